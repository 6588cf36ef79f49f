"""kube-proxy's chains on the real kernel: the reconstructed file against a fresh
reconstruction and ``iptables-restore --test``, then each kube-proxy walk played on the demo node
rebuilt in namespaces with those chains loaded (the random draw pinned the way the walk pins it,
:func:`~ambientlab.core.trace.netfilter.pinned_text`), its per-rule packet counters compared with
the tracer's hops rule by rule, and what the sockets and conntrack saw compared with the walk's
translations."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from ambientlab import load_capture
from ambientlab.core.parse.iptables import parse_iptables_save
from ambientlab.core.trace.breaks import PIECES
from ambientlab.core.trace.kubeproxy import KUBE_PROXY_RULES
from ambientlab.core.trace.netfilter import pinned_text
from ambientlab.core.trace.scenarios import play
from ambientlab.core.trace.walks import WALKS
from ambientlab.live.kube_proxy import DETAILS, add_pod_outside_mesh, reconstruct_kube_proxy
from ambientlab.live.netns import NamespaceSet
from ambientlab.live.nodes import ZTUNNEL
from ambientlab.live.reconstruct import build

pytestmark = pytest.mark.kernel
CAPTURE = load_capture("kind-2022-ambient-worker2")
FILES = {"node": KUBE_PROXY_RULES, "ztunnel": "ztunnel/iptables-save.txt"}
HOSTS = {"node": "node", ZTUNNEL.veth: "ztunnel"}
SERVER = """
import socket, sys
s = socket.socket()
if sys.argv[3] != "0":
    s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT
    s.setsockopt(socket.SOL_SOCKET, 36, int(sys.argv[3], 16))  # SO_MARK
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
print("listening", flush=True)
kept = []
while True:
    conn, peer = s.accept()
    kept.append(conn)
    print("accepted", conn.getsockname()[0], conn.getsockname()[1], peer[0], peer[1], flush=True)
"""
CLIENT = """
import socket, sys, time
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind((sys.argv[1], int(sys.argv[2]))); c.settimeout(5)
c.connect(("10.96.183.192", 9080))
print("connected", c.getpeername()[0], flush=True)
time.sleep(30)
"""


def _spawn(ns: NamespaceSet, host: str, code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns.full(host), sys.executable, "-c", code, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _counters(ns: NamespaceSet, name: str) -> Counter[tuple[str, str, int]]:
    rules = parse_iptables_save(ns.run(name, "iptables-save", "-c"), f"{name}: iptables-save -c").rules
    return Counter({(t, c, int(r)): int(p) for t, c, r, p in zip(rules["table"], rules["chain"], rules["rule"],
                                                                 rules["packets"], strict=True) if p})


def _zero(ns: NamespaceSet) -> None:
    for name in HOSTS:
        for table in ("raw", "mangle", "nat", "filter"):
            ns.run(name, "iptables", "-t", table, "-Z")


def _traced(name: str, without: str | None = None) -> tuple[dict[str, Counter[tuple[str, str, int]]], str]:
    """Return the walk's per-rule counts on each host, and the node's rules pinned as the walk pins them."""
    net = WALKS[name].network(CAPTURE)
    if without:
        PIECES[without].remove(net)
    frame = play(net, WALKS[name].sends(net))
    rules = {h: parse_iptables_save(CAPTURE.text(p), h).rules for h, p in FILES.items()}
    mine: dict[str, Counter[tuple[str, str, int]]] = {"node": Counter(), "ztunnel": Counter()}
    for host, line in zip(frame["host"], frame["line"], strict=True):
        if isinstance(line, str) and line.startswith(f"{CAPTURE.name}/") and "iptables-save" in line:
            row = rules[host].loc[int(line.rsplit(":", 1)[1])]
            mine[host][(row["table"], row["chain"], int(row["rule"]))] += 1
    node_rules = net.machines["node"].rules
    assert node_rules is not None
    return mine, pinned_text(CAPTURE.text(KUBE_PROXY_RULES), node_rules)


@pytest.fixture
def node(netns_ok: None) -> Iterator[NamespaceSet]:
    with NamespaceSet() as ns:
        build(ns)
        add_pod_outside_mesh(ns)
        # the far end of eth0 plays ambient-worker (172.18.0.4) and its reviews-v1 (10.244.1.23)
        ns.script("world", ["ip addr add 172.18.0.4/16 dev eth0", "ip addr add 10.244.1.23/32 dev lo",
                            "ip route add 10.244.2.0/24 via 172.18.0.2 dev eth0"])
        yield ns


def _run(ns: NamespaceSet, pinned: str, client_host: str, source: str, server: tuple[str, str, str, str],
         without: str | None = None) -> tuple[list[str], list[str], dict[str, Counter[tuple[str, str, int]]]]:
    """Load ``pinned`` on the node (minus the removed piece), start the server, warm up with one
    connection, zero the counters, connect once more from port 41000 and return (client line,
    server line, counters)."""
    if without:
        piece = PIECES[without]
        pinned = "\n".join(ln for ln in pinned.split("\n") if ln != f"-A {piece.where[1]} {piece.what}")
    ns.run("node", "iptables-restore", stdin=pinned)
    host, *argv = server
    srv = _spawn(ns, host, SERVER, *argv)
    procs = [srv]
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "listening"
        for port in ("41999", "41000"):
            if port == "41000":
                _zero(ns)
            client = _spawn(ns, client_host, CLIENT, source, port)
            procs.append(client)
            assert client.stdout is not None
            said = client.stdout.readline().split()
            assert said[:1] == ["connected"], client.stderr.read() if client.stderr else said
            accepted = srv.stdout.readline().split()
        time.sleep(0.3)
        return said, accepted, {name: _counters(ns, name) for name in HOSTS}
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()


def _same(kernel: dict[str, Counter[tuple[str, str, int]]], mine: dict[str, Counter[tuple[str, str, int]]]) -> int:
    for name, host in HOSTS.items():
        assert mine[host] == kernel[name], f"{host}: tracer {dict(mine[host])}\nkernel {dict(kernel[name])}"
    return sum(sum(c.values()) for c in mine.values())


def test_the_reconstruction_is_what_the_tools_print_and_loads(netns_ok: None) -> None:
    assert reconstruct_kube_proxy() == CAPTURE.text(KUBE_PROXY_RULES)
    with NamespaceSet() as ns:
        ns.add("f")
        ns.run("f", "ipset", "create", "ztunnel-pods-ips", "hash:ip")
        ns.run("f", "iptables-restore", "--test", stdin=CAPTURE.text(KUBE_PROXY_RULES))


def test_outside_mesh_to_a_pod_on_another_node(node: NamespaceSet) -> None:
    mine, pinned = _traced("service-outside-mesh-remote")
    said, accepted, kernel = _run(node, pinned, DETAILS.veth, DETAILS.ip, ("world", "10.244.1.23", "9080", "0"))
    assert said == ["connected", "10.96.183.192"]  # the reply came back translated to the service address
    assert accepted == ["accepted", "10.244.1.23", "9080", DETAILS.ip, "41000"]  # DNAT, no masquerade
    assert _same(kernel, mine) == 17
    assert mine["node"][("nat", "KUBE-SVC-53SQRANQXVHTJ6HK", 2)] == 1  # the pinned draw, counted once


def test_outside_mesh_to_a_pod_on_this_node_reaches_ztunnel(node: NamespaceSet) -> None:
    mine, pinned = _traced("service-outside-mesh-local")
    said, accepted, kernel = _run(node, pinned, DETAILS.veth, DETAILS.ip, (ZTUNNEL.veth, "127.0.0.1", "15006", "0x402"))
    assert said == ["connected", "10.96.183.192"]
    assert accepted == ["accepted", "10.244.2.5", "9080", DETAILS.ip, "41000"]  # TPROXY kept the endpoint
    assert _same(kernel, mine) == 35 + 32
    # geneve's outer packets to the node's own 10.244.2.1 match -m addrtype --dst-type LOCAL (rule 9)
    assert mine["node"][("nat", "KUBE-SERVICES", 9)] >= 1


def test_the_node_itself_is_masqueraded(node: NamespaceSet) -> None:
    mine, pinned = _traced("service-from-node")
    said, accepted, kernel = _run(node, pinned, "node", "172.18.0.2", ("world", "10.244.1.23", "9080", "0"))
    assert said == ["connected", "10.96.183.192"]
    assert accepted[:4] == ["accepted", "10.244.1.23", "9080", "172.18.0.2"]  # MASQUERADE: eth0's address
    # the walk has no third packet: the kernel's ACK is taken out of the counts it adds to
    ack = Counter({("mangle", "OUTPUT", 1): 1, ("mangle", "POSTROUTING", 1): 1})
    assert kernel["node"] - ack == mine["node"] and kernel["node"][("mangle", "OUTPUT", 1)] == 2
    assert mine["node"][("nat", "KUBE-POSTROUTING", 3)] == 1 and mine["node"][("nat", "KUBE-MARK-MASQ", 1)] == 1


def test_without_the_nat_accept_kube_proxy_dnats_the_mesh_pods_packet(node: NamespaceSet) -> None:
    piece = "node-nat-accept-0x100"
    mine, pinned = _traced("service-from-mesh-pod", piece)
    said, accepted, kernel = _run(node, pinned, "vethproductpage", "10.244.2.3",
                                  (ZTUNNEL.veth, "127.0.0.1", "15001", "0x401"), without=piece)
    assert accepted == ["accepted", "10.244.2.5", "9080", "10.244.2.3", "41000"]  # ztunnel sees the pod, not the VIP
    assert said == ["connected", "10.96.183.192"]
    # the walk plays the SYN only: compare the SYN's rules (every rule the walk counts, counted alike)
    for host, name in (("node", "node"), ("ztunnel", ZTUNNEL.veth)):
        for key, count in mine[host].items():
            assert kernel[name][key] >= count, (host, key)
    assert mine["node"][("nat", "KUBE-SEP-DRTVAV7M4PGJOW5F", 2)] == 1


class _Shim:
    """What :class:`~ambientlab.live.lab.nftrace._Monitor` needs of a lab: the namespaces' real names."""

    def __init__(self, ns: NamespaceSet) -> None:
        self.full = ns.full


TRACE_RULES = "".join(f"-I {chain} -p {spec} -j TRACE\n" for chain in ("PREROUTING", "OUTPUT")
                      for spec in ("tcp --dport 9080", "tcp --sport 9080", "udp --dport 6081", "udp --dport 9"))


@pytest.mark.parametrize("name", ["service-outside-mesh-remote", "service-outside-mesh-local"])
def test_the_kernels_trace_agrees_with_the_walk_hook_by_hook_nat_included(node: NamespaceSet, name: str) -> None:
    """``nft monitor trace`` in the node and ztunnel while details-v1 calls the service (the draw
    pinned as the walk pins it): every hook of every passage, the DNAT'd and the translated-back
    ones included, has the tracer's in/out devices and mark."""
    from ambientlab.core.trace.nftrace import compare, kernel_segments
    from ambientlab.live.lab.nftrace import _Monitor, _without_markers

    net = WALKS[name].network(CAPTURE)
    frame = play(net, WALKS[name].sends(net))
    assert net.machines["node"].rules is not None
    node.run("node", "iptables-restore", stdin=pinned_text(CAPTURE.text(KUBE_PROXY_RULES), net.machines["node"].rules))
    local = name.endswith("local")
    server = (ZTUNNEL.veth, "127.0.0.1", "15006", "0x402") if local else ("world", "10.244.1.23", "9080", "0")
    srv = _spawn(node, server[0], SERVER, *server[1:])
    procs, monitors = [srv], {}
    marker = [sys.executable, "-S", "-I", "-c", "import socket; socket.socket(2, 2).sendto(b'x', ('127.0.0.1', 9))"]
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "listening"
        for host in HOSTS:
            node.run(host, "iptables-restore", "--noflush", stdin="*raw\n" + TRACE_RULES + "COMMIT\n")
            monitors[host] = _Monitor(_Shim(node), host)  # type: ignore[arg-type]
        for host, mon in monitors.items():
            mon.wait_for_marker(0, lambda h=host: node.run(h, *marker))  # type: ignore[misc]
        client = _spawn(node, DETAILS.veth, CLIENT, DETAILS.ip, "41000" if not local else "41001")
        procs.append(client)
        assert client.stdout is not None and client.stdout.readline().split()[:1] == ["connected"]
        time.sleep(0.3)
        for host, mon in monitors.items():
            mon.wait_for_marker(len(mon.lines), lambda h=host: node.run(h, *marker))  # type: ignore[misc]
    finally:
        texts = {host: _without_markers(mon.stop()) for host, mon in monitors.items()}
        for proc in procs:
            proc.kill()
            proc.communicate()
    kernel = kernel_segments({"node": texts["node"], "ztunnel": texts[ZTUNNEL.veth]})
    table = compare(frame, kernel)
    assert table["agree"].all(), table[~table["agree"]].to_string()
    nat = table[table["headers"].str.contains("10.96.183.192")]  # the passages before the DNAT, and the client's
    assert len(table) == (27 if local else 9) and len(nat) == 2, table.to_string()
