"""``lab trace``: one connection between two lab hosts with the kernel tracing it (``nft monitor
trace`` on TRACE rules in the node and ztunnel), and the connection as the tracer sees it. The
traces are read and compared by :mod:`ambientlab.core.trace.nftrace`."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pandas as pd

from ambientlab.core.capture import load_capture
from ambientlab.core.constants import APP_PORT, HBONE_PORT, INPOD_LAB_WALKS, KUBE_PROXY_LAB_WALKS
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.demo import WORLD
from ambientlab.core.trace.kubeproxy import KUBE_PROXY_RULES
from ambientlab.core.trace.netfilter import pinned_text
from ambientlab.core.trace.nftrace import TRACED
from ambientlab.core.trace.predict import Connection, HboneConnection
from ambientlab.core.trace.scenarios import play
from ambientlab.core.trace.walks import WALKS, unfit_for
from ambientlab.live.lab.plan import PEER, SECOND
from ambientlab.live.lab.runtime import Lab, LabError

T = TypeVar("T")


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


def trace_walk(lab: Lab, name: str, timeout: float = 2.0) -> tuple[str, dict[str, str], pd.DataFrame]:
    """Play kube-proxy walk ``name`` (``service-outside-mesh-remote`` or ``-local``) in a lab
    built with ``kube_proxy``: load the node's rules with the walk's draw pinned
    (:func:`~ambientlab.core.trace.netfilter.pinned_text`), open the walk's connection from
    details-v1 to the service address with the kernel tracing the node and ztunnel, and put
    kube-proxy's unpinned rules back. Return (the client's output, {host: nft monitor trace
    text}, the walk's hop table)."""
    if not lab.state.get("kube_proxy"):
        raise LabError("this lab has no kube-proxy chains: `ambientlab lab up --kube-proxy`")
    if name not in KUBE_PROXY_LAB_WALKS:
        raise LabError(f"{name!r} is not a kube-proxy walk the lab plays; these are: {', '.join(KUBE_PROXY_LAB_WALKS)}")
    if lab.state["breaks"]:
        raise LabError("a walk is compared on an intact lab: `ambientlab lab restore` first")
    if name.endswith("-local") and lab.state["behaviour"] != "marks-2022":
        raise LabError(f"{name} answers from ztunnel's 15006 with socket mark 0x402: a marks-2022 lab only")
    capture = load_capture(lab.state["capture"])
    spec = WALKS[name]
    net = spec.network(capture)
    sends = spec.sends(net)
    first = sends[0]
    origin, dst, dport, sport = first.origin, ipv4.to_text(first.packet.dst), first.packet.dport, first.packet.sport
    frame = play(net, sends)  # (the walk rewrites its packets as the kernel would: read the first one before)
    rules = net.machines["node"].rules
    assert rules is not None
    lab.run("node", "iptables-restore", stdin=pinned_text(capture.text(KUBE_PROXY_RULES), rules))
    try:
        output, texts = run_traced(lab, lambda: lab.connect(origin, dst, port=dport, sport=sport, timeout=timeout))
    finally:
        lab.run("node", "iptables-restore", stdin=capture.text(KUBE_PROXY_RULES))
    return output, texts, frame




def trace_inpod_walk(lab: Lab, name: str, timeout: float = 2.0) -> tuple[str, dict[str, str], pd.DataFrame]:
    """Play the first packet of in-pod walk ``name`` in an in-pod lab (``name``: one of
    :data:`~ambientlab.core.constants.INPOD_LAB_WALKS`, for the lab's version of the rules; that
    packet is the app's SYN which the pod's own ``nat OUTPUT`` REDIRECTs to ztunnel's 15001, and
    the lab's stand-in dials on with ports of its own, which no walk can name): the walk's client
    opens its connection with the walk's source port while the kernel traces the client pod and
    the node. Return (the client's output, {host: nft monitor trace text, without the hooks where
    the host has no rules}, the hop table of the walk's first packet). One trace per lab and walk:
    the source port is the walk's."""
    if lab.state.get("design") != "inpod":
        raise LabError(f"{name} is an in-pod walk: `ambientlab lab up --design inpod`")
    if name not in INPOD_LAB_WALKS:
        raise LabError(f"{name!r} is not an in-pod walk the lab plays; these are: {', '.join(INPOD_LAB_WALKS)}")
    capture = load_capture(lab.state["capture"])
    spec = WALKS[name]
    unfit = unfit_for(capture, spec.design)
    if unfit:
        raise LabError(f"{name} is a {spec.design} walk, and this lab's capture {capture.name} {unfit}")
    net = spec.network(capture)
    sends = spec.sends(net)
    first = sends[0]
    origin, dst, dport, sport = first.origin, ipv4.to_text(first.packet.dst), first.packet.dport, first.packet.sport
    frame = play(net, sends[:1])
    output, texts = run_traced(lab, lambda: lab.connect(origin, dst, port=dport, sport=sport, timeout=timeout),
                               (dport, 15001), ("node", origin))
    return output, {host: _hooks_with_rules(text, capture.text(f"{host}/iptables-save.txt"))
                    for host, text in texts.items()}, frame


def _hooks_with_rules(text: str, rules: str) -> str:
    """Return ``nft monitor trace`` text without the events of the hooks in which the host's
    recorded ``rules`` have no rule at all (a pod's INPUT and POSTROUTING: iptables-nft still
    registers those base chains and the kernel traces their policy; no rule acts there, so the
    tracer's hop table, which lists the rules that act, has no row for them)."""
    hooks = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}
    with_rules = {ln.split()[1] for ln in rules.splitlines() if ln.startswith("-A ")} & hooks
    return "".join(ln + "\n" for ln in text.splitlines()
                   if not (len(ln.split()) > 5 and ln.split()[5] in hooks - with_rules))
