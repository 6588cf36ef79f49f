"""``lab trace``: one connection between two lab hosts, each packet's path read from the
kernel (``nft monitor trace`` on TRACE rules) next to the tracer's prediction for the same
connection."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pandas as pd

from ambientlab.book.predict import APP_PORT, HBONE_PORT, Connection, HboneConnection
from ambientlab.core.parse.nft_trace import parse_nft_trace
from ambientlab.core.trace.demo import WORLD
from ambientlab.live.lab.plan import PEER, SECOND
from ambientlab.live.lab.runtime import Lab, LabError

T = TypeVar("T")

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
TRACED = ("node", "ztunnel")
_FLAGS = {"syn": "S", "ack": "A", "0x12": "SA", "0x18": "PA", "0x11": "FA", "0x19": "FPA", "rst": "R", "0x14": "RA",
          "fin": "F", "0x10": "A", "0x02": "S"}


@dataclass
class Segment:
    """One packet's passage through one namespace: its key and the hooks it crossed."""

    host: str
    key: str
    hooks: list[tuple[str, str, str, str]]  # (hook, iif, oif, mark after the hook)


def packet_key(proto: str, src: str, sport: int | None, dst: str, dport: int | None, flags: str = "") -> str:
    """Return the text that names a packet in both the trace and the prediction."""
    if proto == "udp":
        return f"udp {src} > {dst}:{dport}"
    return f"tcp {src}:{sport} > {dst}:{dport} [{flags}]"


def _key_of(packet_line: str) -> str | None:
    def field(name: str) -> str | None:
        found = re.search(rf"\b{name} (\S+)", packet_line)
        return found.group(1) if found else None

    src, dst = field("ip saddr"), field("ip daddr")
    link = re.search(r"@ll,0,(\d+) 0x([0-9a-f]+)", packet_line)  # raw bytes: the inner frame's header
    inner = link.group(2).zfill(int(link.group(1)) // 4) if link else ""
    if inner[24:28] == "0806" and " udp dport " in packet_line:
        return f"udp {src} > {dst}:{field('udp dport')} (carries ARP)"  # neighbour discovery through the tunnel
    if src is None or dst is None or not re.search(r"\b(tcp|udp) dport ", packet_line):
        return None  # nft could not decode it (seen for a tunnel packet's link header): same packet
    if " udp dport " in packet_line:
        return packet_key("udp", str(src), None, str(dst), int(str(field("udp dport"))))
    flags = re.search(r"tcp flags == (\S+)", packet_line)
    word = flags.group(1) if flags else ""
    return packet_key("tcp", str(src), int(str(field("tcp sport"))), str(dst), int(str(field("tcp dport"))),
                      _FLAGS.get(word, word))


def segments(host: str, events: pd.DataFrame) -> list[Segment]:
    """Return the packets' passages in the parsed ``nft monitor trace`` ``events`` of ``host``.

    A segment is one passage of one packet (a trace id; a new one starts when the packet's key
    changes or it enters PREROUTING/OUTPUT again). A hook's mark is the last ``meta mark``
    printed in it (a policy line without one means 0). A rule that changes the mark prints no
    value: its hook's mark is the next one printed, in the same hook or, when the hook ends on
    an ``accept``, the next hook's first (else ``?``). iif/oif come from the ``packet`` lines.
    """
    out: list[Segment] = []
    current: dict[str, Segment] = {}
    mark, waiting = "0x0", None  # waiting: the first hook whose mark was changed but not printed
    for ev in events.itertuples():
        seg = current.get(str(ev.id))
        chain = str(ev.chain)
        if ev.event == "packet":
            key = _key_of(str(ev.body))
            if seg is None or (key is not None and seg.key != key) or (
                    chain in ("PREROUTING", "OUTPUT") and seg.hooks[-1][0] != chain):
                seg = Segment(host, key or "?", [])
                current[str(ev.id)] = seg
                out.append(seg)
                mark, waiting = "0x0", None
            iif = ev.iif if isinstance(ev.iif, str) else ""
            oif = ev.oif if isinstance(ev.oif, str) else ""
            if not seg.hooks or seg.hooks[-1][0] != chain:
                seg.hooks.append((chain, iif, oif, mark))
            else:
                seg.hooks[-1] = (chain, iif or seg.hooks[-1][1], oif or seg.hooks[-1][2], mark)
            continue
        if seg is None or not seg.hooks:
            continue
        if isinstance(ev.mark, str) or ev.event == "policy":
            mark = ev.mark if isinstance(ev.mark, str) else "0x0"
            for i in range(waiting if waiting is not None else len(seg.hooks) - 1, len(seg.hooks)):
                hook, iif_, oif_, _ = seg.hooks[i]
                seg.hooks[i] = (hook, iif_, oif_, mark)
            waiting = None
        elif ev.event == "rule" and re.search(r"meta mark set|TPROXY|\bMARK\b", str(ev.body)):
            mark, waiting = "?", len(seg.hooks) - 1
            hook, iif_, oif_, _ = seg.hooks[-1]
            seg.hooks[-1] = (hook, iif_, oif_, mark)
    return out


def _tracer_segments(frame: pd.DataFrame, hosts: tuple[str, ...] = TRACED) -> dict[str, list[Segment]]:
    """Return {packet label: segments} of a hop table, split where a packet changes namespace
    or is encapsulated/decapsulated (the kernel traces each passage separately)."""
    out: dict[str, list[Segment]] = {}
    for label, hops in frame.groupby("packet", sort=False):
        segs: list[Segment] = []
        seg: Segment | None = None
        for row in hops.itertuples():
            if row.hook in ("wire", "deliver"):
                seg = None
                continue
            if row.hook not in HOOKS or row.host not in hosts:
                continue
            if seg is None or seg.host != row.host:
                seg = Segment(str(row.host), str(row.headers), [])
                segs.append(seg)
            entry = (str(row.hook), row.iif if isinstance(row.iif, str) else "",
                     row.oif if isinstance(row.oif, str) else "", hex(int(str(row.mark_after), 16)))
            seg.key = str(row.headers)
            if seg.hooks and seg.hooks[-1][0] == row.hook:
                seg.hooks[-1] = entry
            else:
                seg.hooks.append(entry)
        out[str(label)] = segs
    return out


def _without_markers(text: str) -> str:
    """Drop every event of the marker packets (UDP port 9) used to see that a monitor is ready."""
    ids = {m.group(1) for m in re.finditer(r"^trace id (\w+) .* packet: .*udp dport 9 ", text, re.M)}
    return "".join(ln + "\n" for ln in text.splitlines() if ln.split()[2:3] and ln.split()[2] not in ids)


class _Monitor:
    """``nft monitor trace`` in one lab host, its lines collected by a thread."""

    def __init__(self, lab: Lab, host: str) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.full(host), "nft", "monitor", "trace"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut short when the monitor is stopped is dropped
                self.lines.append(line)

    def wait_for_marker(self, after: int, send: Callable[[], None], timeout: float = 5.0) -> None:
        """Send marker packets until one shows up after line ``after`` (so every earlier event is in)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            send()
            for _ in range(20):
                if any("udp dport 9 " in ln for ln in self.lines[after:]):
                    return
                time.sleep(0.01)
        raise LabError(f"nft monitor trace showed no marker packet within {timeout} s")

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait()
        self.reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return "".join(self.lines)


def run_traced(lab: Lab, action: Callable[[], T], ports: tuple[int, ...] = (APP_PORT,),
               hosts: tuple[str, ...] = TRACED) -> tuple[T, dict[str, str]]:
    """Run ``action`` with TRACE rules for TCP ``ports`` and UDP 6081 in ``hosts`` (the node
    and ztunnel); return (its result, {host: the ``nft monitor trace`` text}). The rules are
    removed after.

    A marker packet (UDP port 9, to the host itself) is sent before and after: the first shows
    that the monitor listens, the second that every event of the connection has arrived. The
    markers' events are left out of the text.
    """
    specs = [[*p, "--dport" if i == 0 else "--sport", str(port)] for port in ports for i, p in
             enumerate((["-p", "tcp"], ["-p", "tcp"]))] + [["-p", "udp", "--dport", "6081"], ["-p", "udp", "--dport", "9"]]
    monitors: dict[str, _Monitor] = {}
    added: list[str] = []
    # -S -I: the marker sender starts in a few milliseconds (no site-packages, no ambientlab)
    marker = [sys.executable, "-S", "-I", "-c", "import socket; socket.socket(2, 2).sendto(b'x', ('127.0.0.1', 9))"]
    texts: dict[str, str] = {}

    def rules(op: str) -> str:  # every TRACE rule of a host in one iptables-restore (one process, atomic)
        lines = [f"{op} {chain} {' '.join(spec)} -j TRACE" for spec in specs for chain in ("PREROUTING", "OUTPUT")]
        return "*raw\n" + "\n".join(lines) + "\nCOMMIT\n"

    try:
        for host in hosts:
            lab.run(host, "iptables-restore", "--noflush", stdin=rules("-I"))
            added.append(host)
            monitors[host] = _Monitor(lab, host)
        for host, mon in monitors.items():
            mon.wait_for_marker(0, lambda h=host: lab.run(h, *marker))  # type: ignore[misc]
        result = action()
        time.sleep(0.2)  # packets still in flight inside the lab
        for host, mon in monitors.items():
            mon.wait_for_marker(len(mon.lines), lambda h=host: lab.run(h, *marker))  # type: ignore[misc]
    finally:
        for host, mon in monitors.items():
            texts[host] = _without_markers(mon.stop())
        for host in added:
            lab.run(host, "iptables-restore", "--noflush", stdin=rules("-D"), check=False)
    return result, texts


def connection_of(lab: Lab, source: str, destination: str, sport: int, onward_port: int) -> Connection:
    """Return the :class:`Connection` of lab hosts ``source`` -> ``destination`` (tracer names)."""
    return Connection(lab.state["capture"], lab.state["behaviour"], WORLD if source == PEER else source,
                      lab.address(source), destination, lab.address(destination), sport, onward_port)


def trace(lab: Lab, source: str, destination: str, sport: int = 41234,
          timeout: float = 2.0) -> tuple[str, dict[str, str], Connection]:
    """Run one connection ``source`` -> ``destination`` with the kernel tracing it; return (the
    client's output, {host: nft monitor trace text}, the connection as the tracer sees it)."""
    if lab.state["features"].get("nft monitor trace (TRACE target)") is False:
        raise LabError("`lab trace` needs iptables-nft and the nft tool (apt-get install nftables)")
    before = len(lab.events("ztunnel"))
    output, texts = run_traced(lab, lambda: lab.connect(source, destination, sport=sport, timeout=timeout))
    client, server = lab.address(source), lab.address(destination)
    onward = None
    for event in lab.events("ztunnel")[before:]:
        if event.get("event") == "accepted" and event.get("peer") == f"{client}:{sport}" and event.get("onward"):
            onward = int(event["onward"].split(" -> ")[0].rsplit(":", 1)[1])
    if onward is None:  # not logged yet (the onward connect may still be waiting): the trace shows it,
        # as the first SYN from the client's address to the server after the client's own SYN
        text = texts.get("ztunnel", "")
        start = re.search(rf"tcp sport {sport} tcp dport {APP_PORT} tcp flags == syn\b", text)
        seen = re.search(rf"OUTPUT packet: .*ip saddr {re.escape(client)} ip daddr {re.escape(server)} .*"
                         rf"tcp sport (\d+) tcp dport {APP_PORT} tcp flags == syn\b", text[start.end():] if start else "")
        onward = int(seen.group(1)) if seen else sport + 1
    return output, texts, connection_of(lab, source, destination, sport, onward)


def trace_hbone(lab: Lab, source: str, destination: str, sport: int = 41234, timeout: float = 2.0,
                send: str = "") -> tuple[str, dict[str, str], HboneConnection]:
    """Run one connection across the two nodes of a two-node lab with the kernel tracing both
    nodes and both ztunnels (TCP 9080 and 15008, UDP 6081); return (the client's output,
    {host: nft monitor trace text}, the connection as the tracer sees it, with the ports the
    two ztunnels' sockets got, read from their logs)."""
    if "workloads" not in lab.state:
        raise LabError("an HBONE trace needs a two-node lab (`ambientlab lab up --nodes 2`)")
    far = f"{SECOND}ztunnel"
    before = {z: len(lab.events(z)) for z in ("ztunnel", far)}
    output, texts = run_traced(lab, lambda: lab.connect(source, destination, sport=sport, timeout=timeout, send=send),
                               (APP_PORT, HBONE_PORT), ("node", "ztunnel", f"{SECOND}node", far))
    client = f"{lab.address(source)}:{sport}"
    near_event = _wait_event(lab, "ztunnel", before["ztunnel"], lambda e: e.get("peer") == client)
    hbone_src = str(near_event.get("hbone", ":0").split(" -> ")[0])
    far_event = _wait_event(lab, far, before[far], lambda e: e.get("peer") == hbone_src)
    tunnel_port = int(hbone_src.rsplit(":", 1)[1])
    onward_port = int(str(far_event.get("onward", ":0")).split(" -> ")[0].rsplit(":", 1)[1])
    conn = HboneConnection(lab.state["behaviour"], source, lab.address(source), destination, lab.address(destination),
                           sport, tunnel_port, onward_port)
    return output, texts, conn


def _wait_event(lab: Lab, process: str, after: int, match: Callable[[dict[str, object]], bool],
                timeout: float = 3.0) -> dict[str, object]:
    """Return the first ``tunnel`` event of ``process`` after event ``after`` that ``match``es
    (it is written when the tunnelled connection closes: wait for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in lab.events(process)[after:]:
            if event.get("event") == "tunnel" and match(event):
                return event
        time.sleep(0.05)
    raise LabError(f"{process} logged no tunnelled connection within {timeout} s: {lab.events(process)[after:]}")


def kernel_segments(texts: dict[str, str], source: str = "lab") -> dict[str, list[Segment]]:
    """Return {host: segments} of ``nft monitor trace`` texts."""
    return {h: segments(h, parse_nft_trace(t, f"{source}: {h} nft monitor trace")) for h, t in texts.items()}


def compare(predicted: pd.DataFrame, kernel: dict[str, list[Segment]]) -> pd.DataFrame:
    """Return the predicted hop table's passages next to the kernel's, hook by hook.

    Passages are matched by host and packet key, in order (tunnel packets carrying ARP, which
    the tracer does not model, stay unmatched). Columns: packet, host, headers, hook, kernel
    iif/oif/mark, tracer iif/oif/mark, agree.
    """
    rows = []
    pending = {host: list(segs) for host, segs in kernel.items()}
    for label, segs in _tracer_segments(predicted, tuple(kernel)).items():
        for seg in segs:
            queue = pending.get(seg.host, [])
            inner = _inner_key(seg.key)
            # Tunnel packets all look alike (same addresses and port): where the sender's
            # POSTROUTING names the tunnel they came out of, that must match too, so that a late
            # packet of an earlier connection through the other tunnel is not taken for this one.
            tunnel = _tunnel_of(inner, seg.hooks)
            match = next((k for k in queue if k.key == inner and _tunnel_of(k.key, k.hooks) == tunnel), None)
            if match is not None:
                queue.remove(match)
            hooks = max(len(seg.hooks), len(match.hooks) if match else 0)
            for i in range(hooks):
                mine = seg.hooks[i] if i < len(seg.hooks) else ("", "", "", "")
                theirs = match.hooks[i] if match and i < len(match.hooks) else ("", "", "", "")
                rows.append({"packet": label, "host": seg.host, "headers": inner, "hook": mine[0] or theirs[0],
                             "kernel iif": theirs[1], "kernel oif": theirs[2], "kernel mark": theirs[3],
                             "tracer iif": mine[1], "tracer oif": mine[2], "tracer mark": mine[3],
                             "agree": mine == theirs})
    return pd.DataFrame(rows)


def _tunnel_of(key: str, hooks: list[tuple[str, str, str, str]]) -> str | None:
    """Return the tunnel a UDP tunnel packet (``key``) came out of: its POSTROUTING in-device,
    or None where the passage does not show one (other packets, the receiving side)."""
    if not key.startswith("udp "):
        return None
    return next((iif for hook, iif, _, _ in hooks if hook == "POSTROUTING" and iif), None)


def _inner_key(headers: str) -> str:
    """Return the packet key of the tracer's ``headers`` text (the outer header if tunnelled)."""
    outer = re.match(r"^([\d.]+):\d+ > ([\d.]+):(\d+) udp", headers)
    tcp = re.match(r"^(\S+):(\d+) > (\S+):(\d+) tcp \[(\w+)\]", headers)
    if tcp:
        return packet_key("tcp", tcp.group(1), int(tcp.group(2)), tcp.group(3), int(tcp.group(4)), tcp.group(5))
    if outer:
        return packet_key("udp", outer.group(1), None, outer.group(2), int(outer.group(3)))
    return headers
