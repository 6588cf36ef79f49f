"""The tracer's walk of a real TCP handshake against the kernel: the demo node and ztunnel pod
rebuilt in namespaces (iptables loaded as upstream installs them), a transparent listener in
the ztunnel namespace playing ztunnel, and per-rule packet counters plus the conntrack mark
compared with the tracer's walk of the same three packets."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest

from ambientlab import load_capture
from ambientlab.core.parse.iptables import parse_iptables_save
from ambientlab.core.trace.walks import packet_hops, walk
from ambientlab.live.netns import NamespaceSet
from ambientlab.live.nodes import ZTUNNEL
from ambientlab.live.reconstruct import build

pytestmark = pytest.mark.kernel
CAPTURE = load_capture("kind-2022-ambient-worker2")
SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT, as ztunnel's listeners
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 15001)); s.listen(8)
print("listening", flush=True)
kept = []  # accepted sockets stay open: closing one would send a FIN into the counters
while True:
    conn, peer = s.accept()
    kept.append(conn)
    print("accepted", conn.getsockname()[0], conn.getsockname()[1], peer[0], peer[1], flush=True)
"""
CLIENT = """
import socket, sys, time
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind(("10.244.2.3", int(sys.argv[1]))); c.settimeout(5)
c.connect(("10.244.2.5", 9080))
print("connected", flush=True)
time.sleep(30)
"""
HOSTS = {"node": "node", ZTUNNEL.veth: "ztunnel"}


def _counters(ns: NamespaceSet, name: str) -> Counter[tuple[str, str, int]]:
    rules = parse_iptables_save(ns.run(name, "iptables-save", "-c"), f"{name}: iptables-save -c").rules
    return Counter({(t, c, int(r)): int(p) for t, c, r, p in zip(rules["table"], rules["chain"], rules["rule"],
                                                                 rules["packets"], strict=True) if p})


def _connect(ns: NamespaceSet, port: int) -> subprocess.Popen[str]:
    client = subprocess.Popen(["ip", "netns", "exec", ns.full(HOST_POD), sys.executable, "-c", CLIENT, str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert client.stdout is not None
    line = client.stdout.readline()
    assert line.strip() == "connected", client.stderr.read() if client.stderr else line
    return client


HOST_POD = "vethproductpage"


def test_handshake_through_ztunnel_matches_the_walk(netns_ok: None) -> None:
    with NamespaceSet() as ns:
        build(ns)
        server = subprocess.Popen(["ip", "netns", "exec", ns.full(ZTUNNEL.veth), sys.executable, "-c", SERVER],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        clients = []
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "listening"
            clients.append(_connect(ns, 40001))  # warm-up: neighbours resolved, then counters zeroed
            assert server.stdout.readline().startswith("accepted")
            for name in HOSTS:
                for table in ("raw", "mangle", "nat", "filter"):
                    ns.run(name, "iptables", "-t", table, "-Z")
            clients.append(_connect(ns, 40002))
            accepted = server.stdout.readline().split()
            time.sleep(0.2)
            kernel = {name: _counters(ns, name) for name in HOSTS}
            conntrack = ns.run("node", "conntrack", "-L", "-p", "tcp", "--sport", "40002")
        finally:
            for proc in [*clients, server]:
                proc.kill()
                proc.communicate()  # waits, and closes the pipes
    # ztunnel's socket saw the pod's address as peer and the original destination as its own
    assert accepted == ["accepted", "10.244.2.5", "9080", "10.244.2.3", "40002"]
    frame = walk(CAPTURE, "no-socket-marks")
    rules = {h: parse_iptables_save(CAPTURE.text(f"{h}/iptables-save.txt"), h).rules for h in ("node", "ztunnel")}
    mine: dict[str, Counter[tuple[str, str, int]]] = {"node": Counter(), "ztunnel": Counter()}
    for host, line in zip(frame["host"], frame["line"], strict=True):
        if isinstance(line, str) and "/iptables-save.txt:" in line:
            row = rules[host].loc[int(line.rsplit(":", 1)[1])]
            mine[host][(row["table"], row["chain"], int(row["rule"]))] += 1
    for name, host in HOSTS.items():
        assert mine[host] == kernel[name], f"{host}: tracer {dict(mine[host])}\nkernel {dict(kernel[name])}"
    assert sum(mine["node"].values()) > 10 and sum(mine["ztunnel"].values()) > 10
    # the conntrack mark the node saved for this connection
    ct = packet_hops(frame, 3).query("host == \'node\'")["ctmark"].dropna().iloc[-1]  # the crossing into the pod has none
    assert f"mark={int(ct, 16)} " in conntrack, conntrack
