"""Reading the kernel's own trace of a lab connection (``nft monitor trace`` on TRACE rules),
and comparing it with the tracer's prediction for the same connection, hook by hook. Offline:
the chapters read recorded traces; :mod:`ambientlab.live.lab.nftrace` runs the live ones."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from ambientlab.core.parse.nft_trace import parse_nft_trace

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
    or is encapsulated/decapsulated (the kernel traces each passage separately), and where NAT
    has changed its addresses by the next hook (the kernel's trace prints each hook's packet as
    it enters the hook, and :func:`segments` starts a new passage when that changes). A
    ``conntrack`` row (a translation no rule made) is not a hook of its own."""
    out: dict[str, list[Segment]] = {}
    for label, hops in frame.groupby("packet", sort=False):
        segs: list[Segment] = []
        seg: Segment | None = None
        for row in hops.itertuples():
            if row.hook in ("wire", "deliver"):
                seg = None
                continue
            if row.hook not in HOOKS or row.host not in hosts or row.where == "conntrack":
                continue
            new_hook = seg is None or not seg.hooks or seg.hooks[-1][0] != row.hook
            if seg is None or seg.host != row.host or (new_hook and seg.key != str(row.headers)):
                seg = Segment(str(row.host), str(row.headers), [])
                segs.append(seg)
            entry = (str(row.hook), row.iif if isinstance(row.iif, str) else "",
                     row.oif if isinstance(row.oif, str) else "", hex(int(str(row.mark_after), 16)))
            if seg.hooks and seg.hooks[-1][0] == row.hook:
                seg.hooks[-1] = entry
            else:
                seg.hooks.append(entry)
        out[str(label)] = segs
    return out


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
