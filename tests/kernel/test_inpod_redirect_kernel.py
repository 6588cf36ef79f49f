"""Today's in-pod rules (REDIRECT, conntrack zones) on the real kernel: the capture
``inpod-redirect-ambient-worker2`` against a fresh reconstruction, then each ``redirect-*`` walk
played with real sockets on the node rebuilt in namespaces, its per-rule packet counters compared
with the tracer's hops rule by rule (the walk's packets plus the handshake's remaining ACKs,
which the kernel sends too), and what the sockets and conntrack saw compared with the walk."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from ambientlab import load_capture
from ambientlab.core.constants import INPOD_REDIRECT
from ambientlab.core.parse.iptables import parse_iptables_save
from ambientlab.core.trace import inpod
from ambientlab.core.trace.demo import WORLD
from ambientlab.core.trace.network import Socket
from ambientlab.core.trace.scenarios import Send, play, tcp
from ambientlab.core.trace.walks import WALKS
from ambientlab.live.netns import NamespaceSet
from ambientlab.live.reconstruct_inpod import build_inpod, reconstruct_inpod

pytestmark = pytest.mark.kernel
CAPTURE = load_capture(INPOD_REDIRECT)
HOSTS = {"node": "node", "vethproductpage": "productpage-v1", "vethreviewsv1": "reviews-v1"}  # namespace: tracer host
MARK = inpod.INPOD_MARK
IP = inpod.IP
CLIENT, REMOTE, PRODUCTPAGE, REVIEWS = IP("10.244.0.6"), inpod.REMOTE_POD, inpod.PRODUCTPAGE, inpod.REVIEWS_V1
ACTOR = r"""
import json, socket, struct, sys, time
a = json.loads(sys.argv[1])
kept = []
def sock(kind, mark=0, transparent=False, bind=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if transparent:
        s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT
    if mark:
        s.setsockopt(socket.SOL_SOCKET, 36, mark)  # SO_MARK
    if bind:
        s.bind(tuple(bind))
    kept.append(s)
    return s
def original_dst(conn):
    try:
        raw = conn.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
    except OSError:
        return None
    port, ip = struct.unpack("!2xH4s8x", raw)
    return f"{socket.inet_ntoa(ip)}:{port}"
def say(**kw):
    print(json.dumps(kw), flush=True)
do = a["do"]
if do == "listen":  # a TCP listener; on accept, what it saw, then (optionally) its onward connection
    s = sock("tcp", a.get("mark", 0), bind=a["bind"]); s.listen(8); say(event="ready")
    conn, peer = s.accept(); kept.append(conn)
    seen = dict(peer=f"{peer[0]}:{peer[1]}", local="%s:%d" % conn.getsockname(), original_dst=original_dst(conn))
    dial = a.get("dial")
    if dial:
        src = [peer[0] if dial["src"][0] == "peer" else dial["src"][0], dial["src"][1]]
        c = sock("tcp", dial.get("mark", 0), dial.get("transparent", False), src)
        c.settimeout(5); c.connect(tuple(dial["dst"])); seen["onward"] = "%s:%d" % c.getsockname()
    say(event="accepted", **seen)
elif do == "connect":
    c = sock("tcp", a.get("mark", 0), bind=a["bind"]); c.settimeout(5); c.connect(tuple(a["dst"]))
    say(event="connected", peer="%s:%d" % c.getpeername())
elif do == "udp-echo":  # kube-dns: answers each query to whoever asked
    s = sock("udp", bind=a["bind"]); say(event="ready")
    data, peer = s.recvfrom(512)
    if a.get("answer", True):
        s.sendto(b"answer", peer)
    say(event="answered", peer=f"{peer[0]}:{peer[1]}")
elif do == "dns-proxy":  # ztunnel's DNS proxy: 127.0.0.1:15053, asks upstream from its own marked socket
    s = sock("udp", a["mark"], bind=a["bind"])
    up = sock("udp", a["mark"], bind=a["upstream_bind"]); up.settimeout(5); say(event="ready")
    data, app = s.recvfrom(512)
    up.sendto(data, tuple(a["upstream"])); answer, server = up.recvfrom(512)
    s.sendto(answer, app)
    say(event="proxied", app=f"{app[0]}:{app[1]}", upstream=f"{server[0]}:{server[1]}")
elif do == "udp-listen":  # receives one datagram and says from whom
    s = sock("udp", a.get("mark", 0), bind=a["bind"]); say(event="ready")
    data, peer = s.recvfrom(512); say(event="received", peer=f"{peer[0]}:{peer[1]}")
elif do == "udp-send":  # one datagram, then the socket closes (its conntrack entry stays)
    c = sock("udp", a.get("mark", 0), bind=a["bind"]); c.sendto(b"query", tuple(a["dst"])); c.close()
    say(event="sent")
elif do == "udp-ask":
    c = sock("udp", bind=a["bind"]); c.settimeout(5); c.sendto(b"query", tuple(a["dst"]))
    data, server = c.recvfrom(512); say(event="answered", source=f"{server[0]}:{server[1]}", data=data.decode())
time.sleep(20)
"""


def _spawn(ns: NamespaceSet, host: str, **action: object) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns.full(host), sys.executable, "-c", ACTOR, json.dumps(action)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _said(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(proc.communicate()[1])
    return json.loads(line)


def _counters(ns: NamespaceSet, name: str) -> Counter[tuple[str, str, int]]:
    rules = parse_iptables_save(ns.run(name, "iptables-save", "-c"), f"{name}: iptables-save -c").rules
    return Counter({(t, c, int(r)): int(p) for t, c, r, p in zip(rules["table"], rules["chain"], rules["rule"],
                                                                 rules["packets"], strict=True) if p})


@pytest.fixture
def node(netns_ok: None) -> Iterator[NamespaceSet]:
    with NamespaceSet() as ns:
        build_inpod(ns, rules="redirect")
        # the far end of eth0 plays the other nodes, their pods (10.244.0.6, 10.244.1.5) and kube-dns
        ns.script("world", ["ip addr add 172.18.0.3/16 dev eth0", "ip addr add 172.18.0.4/16 dev eth0",
                            "ip link set lo up", "ip addr add 10.244.0.6/32 dev lo", "ip addr add 10.244.1.5/32 dev lo",
                            "ip addr add 10.96.0.10/32 dev lo", "ip route add 10.244.2.0/24 via 172.18.0.2 dev eth0"])
        for name in HOSTS:
            ns.run(name, "ip", "link", "set", "lo", "up")
        yield ns


def _extras(name: str, net: inpod.Network) -> list[Send]:
    """The packets the kernel sends for the walk's connections that the walk leaves out: the
    rest of each TCP handshake (ztunnel's SYN-ACK to a REDIRECTed client, the final ACKs)."""
    if name == "redirect-outbound":
        net.machines["productpage-v1"].sockets += [
            Socket("ztunnel 15001, accepted", (IP("127.0.0.1"), 15001), (PRODUCTPAGE, 40000), mark=MARK),
            Socket("app", (PRODUCTPAGE, 40000), (REMOTE, 9080))]
        return [Send("4 SYN-ACK ztunnel 15001 -> app", "productpage-v1",
                     tcp(IP("127.0.0.1"), 15001, PRODUCTPAGE, 40000, "SA"), MARK),
                Send("5 ACK app -> remote pod:9080", "productpage-v1", tcp(PRODUCTPAGE, 40000, REMOTE, 9080, "A")),
                Send("6 HBONE ACK ztunnel -> remote pod", "productpage-v1",
                     tcp(PRODUCTPAGE, 43000, REMOTE, 15008, "A"), MARK)]
    if name == "redirect-inbound-plaintext":
        return [Send("4 SYN-ACK ztunnel 15006 -> client", "reviews-v1", tcp(REVIEWS, 15006, CLIENT, 45000, "SA"), MARK),
                Send("5 ACK client -> reviews-v1:9080", WORLD, tcp(CLIENT, 45000, REVIEWS, 9080, "A")),
                Send("6 ACK ztunnel (as the client) -> app", "reviews-v1", tcp(CLIENT, 44000, REVIEWS, 9080, "A"),
                     MARK, True)]
    if name == "redirect-inbound-hbone":
        return [Send("5 ACK remote pod -> reviews-v1:15008", WORLD, tcp(REMOTE, 50000, REVIEWS, 15008, "A")),
                Send("6 ACK ztunnel (as the remote pod) -> app", "reviews-v1", tcp(REMOTE, 44000, REVIEWS, 9080, "A"),
                     MARK, True)]
    if name == "redirect-probe":
        return [Send("3 ACK kubelet -> reviews-v1:9080", "node", tcp(inpod.HOST_IP, 46000, REVIEWS, 9080, "A"))]
    return []


def _traced(name: str) -> tuple[dict[str, Counter[tuple[str, str, int]]], list[str]]:
    """Return the tracer's per-rule counts on each host for the walk plus the kernel's remaining
    packets, and where each of the walk's own packets ended."""
    net = WALKS[name].network(CAPTURE)
    sends = WALKS[name].sends(net)
    frame = play(net, sends + _extras(name, net))
    mine: dict[str, Counter[tuple[str, str, int]]] = {host: Counter() for host in HOSTS.values()}
    files = {host: parse_iptables_save(CAPTURE.text(f"{host}/iptables-save.txt"), host).rules for host in mine}
    for host, line in zip(frame["host"], frame["line"], strict=True):
        if isinstance(line, str) and "iptables-save" in line:
            row = files[host].loc[int(line.rsplit(":", 1)[1])]
            mine[host][(row["table"], row["chain"], int(row["rule"]))] += 1
    ends = frame.groupby("packet", sort=False).tail(1)["matched"].tolist()[:len(sends)]
    return mine, ends


def _kernel(ns: NamespaceSet) -> dict[str, Counter[tuple[str, str, int]]]:
    time.sleep(0.3)
    return {HOSTS[name]: _counters(ns, name) for name in HOSTS}


def _zero(ns: NamespaceSet) -> None:
    for name in HOSTS:
        for table in ("raw", "mangle", "nat", "filter"):
            ns.run(name, "iptables", "-t", table, "-Z")


def _same(kernel: dict[str, Counter[tuple[str, str, int]]], mine: dict[str, Counter[tuple[str, str, int]]]) -> int:
    for host in mine:
        assert mine[host] == kernel[host], f"{host}: tracer {dict(mine[host])}\nkernel {dict(kernel[host])}"
    return sum(sum(c.values()) for c in mine.values())


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.kill()
        proc.communicate()


def test_the_capture_is_what_the_tools_print(netns_ok: None) -> None:
    texts = reconstruct_inpod(rules="redirect")
    for path, text in texts.items():
        if path == "node/ipset-list.txt":  # the header holds a random initval, the members' order a hash's
            assert sorted(text.splitlines()[7:]) == sorted(CAPTURE.text(path).splitlines()[7:])
        else:
            assert text == CAPTURE.text(path), path


def test_outbound_is_redirected_to_15001_and_ztunnel_reads_the_original_destination(node: NamespaceSet) -> None:
    mine, ends = _traced("redirect-outbound")
    procs = [_spawn(node, "world", do="listen", bind=["10.244.1.5", 15008])]
    try:
        assert _said(procs[0])["event"] == "ready"
        procs.append(_spawn(node, "vethproductpage", do="listen", bind=["0.0.0.0", 15001], mark=MARK,
                            dial={"src": ["10.244.2.3", 43000], "dst": ["10.244.1.5", 15008], "mark": MARK}))
        assert _said(procs[1])["event"] == "ready"
        _zero(node)
        procs.append(_spawn(node, "vethproductpage", do="connect", bind=["10.244.2.3", 40000], dst=["10.244.1.5", 9080]))
        assert _said(procs[2]) == {"event": "connected", "peer": "10.244.1.5:9080"}
        ztunnel, far = _said(procs[1]), _said(procs[0])
        kernel = _kernel(node)
    finally:
        _stop(procs)
    assert ztunnel["original_dst"] == "10.244.1.5:9080" == ends[0].split("gives it ")[1].split(",")[0]
    assert ztunnel["local"] == "127.0.0.1:15001" and ztunnel["onward"] == "10.244.2.3:43000"
    assert far["peer"] == "10.244.2.3:43000"
    assert _same(kernel, mine) == 25


def test_inbound_plaintext_is_redirected_to_15006_inside_the_pod(node: NamespaceSet) -> None:
    mine, ends = _traced("redirect-inbound-plaintext")
    procs = [_spawn(node, "vethreviewsv1", do="listen", bind=["0.0.0.0", 9080])]
    try:
        assert _said(procs[0])["event"] == "ready"
        procs.append(_spawn(node, "vethreviewsv1", do="listen", bind=["0.0.0.0", 15006], mark=MARK,
                            dial={"src": ["peer", 44000], "dst": ["10.244.2.7", 9080], "mark": MARK,
                                  "transparent": True}))
        assert _said(procs[1])["event"] == "ready"
        _zero(node)
        procs.append(_spawn(node, "world", do="connect", bind=["10.244.0.6", 45000], dst=["10.244.2.7", 9080]))
        assert _said(procs[2]) == {"event": "connected", "peer": "10.244.2.7:9080"}
        ztunnel, app = _said(procs[1]), _said(procs[0])
        kernel = _kernel(node)
    finally:
        _stop(procs)
    assert ztunnel["local"] == "10.244.2.7:15006" and ztunnel["original_dst"] == "10.244.2.7:9080"
    assert ends[0].startswith("socket ztunnel 15006 (inbound plaintext); SO_ORIGINAL_DST gives it 10.244.2.7:9080")
    assert app["peer"] == "10.244.0.6:44000"  # the app sees the client's address
    assert ends[2] == "socket ztunnel to the app (client's address)"
    assert _same(kernel, mine) == 27


def test_hbone_reaches_15008_untouched_and_the_answer_returns_by_0x111(node: NamespaceSet) -> None:
    mine, ends = _traced("redirect-inbound-hbone")
    procs = [_spawn(node, "vethreviewsv1", do="listen", bind=["0.0.0.0", 9080])]
    try:
        assert _said(procs[0])["event"] == "ready"
        procs.append(_spawn(node, "vethreviewsv1", do="listen", bind=["0.0.0.0", 15008], mark=MARK,
                            dial={"src": ["peer", 44000], "dst": ["10.244.2.7", 9080], "mark": MARK,
                                  "transparent": True}))
        assert _said(procs[1])["event"] == "ready"
        _zero(node)
        procs.append(_spawn(node, "world", do="connect", bind=["10.244.1.5", 50000], dst=["10.244.2.7", 15008]))
        assert _said(procs[2])["event"] == "connected"
        ztunnel, app = _said(procs[1]), _said(procs[0])
        kernel = _kernel(node)
    finally:
        _stop(procs)
    # not translated: conntrack's original destination is the one the socket has
    assert ztunnel["local"] == ztunnel["original_dst"] == "10.244.2.7:15008"
    assert ends[0] == "socket ztunnel 15008 (inbound HBONE)" and app["peer"] == "10.244.1.5:44000"
    assert mine["reviews-v1"][("nat", "ISTIO_PRERT", 2)] == 0  # 15008 is not redirected
    assert _same(kernel, mine) == 26


def test_dns_goes_to_15053_and_ztunnels_own_query_is_in_zone_1(node: NamespaceSet) -> None:
    mine, ends = _traced("redirect-dns")
    procs = [_spawn(node, "world", do="udp-echo", bind=["10.96.0.10", 53])]
    try:
        assert _said(procs[0])["event"] == "ready"
        procs.append(_spawn(node, "vethproductpage", do="dns-proxy", bind=["127.0.0.1", 15053], mark=MARK,
                            upstream_bind=["10.244.2.3", 54000], upstream=["10.96.0.10", 53]))
        assert _said(procs[1])["event"] == "ready"
        _zero(node)
        procs.append(_spawn(node, "vethproductpage", do="udp-ask", bind=["10.244.2.3", 53000], dst=["10.96.0.10", 53]))
        app, proxy, dns = _said(procs[2]), _said(procs[1]), _said(procs[0])
        kernel = _kernel(node)
        entries = node.run("vethproductpage", "conntrack", "-L", "-p", "udp")
    finally:
        _stop(procs)
    # the app's answer comes from the address it asked, though ztunnel sent it from 127.0.0.1:15053
    assert app == {"event": "answered", "source": "10.96.0.10:53", "data": "answer"}
    assert proxy["app"] == "10.244.2.3:53000" and dns["peer"] == "10.244.2.3:54000"
    assert ends == ["socket ztunnel 15053 (DNS proxy)", "leaves for the rest of the cluster (eth0)",
                    "socket ztunnel's query to kube-dns", "socket app's resolver"]
    zones = {line.split("sport=")[1].split()[0]: ("zone=1" in line) for line in entries.splitlines() if "sport=" in line}
    assert zones == {"53000": False, "54000": True}  # the app's query in zone 0, ztunnel's in zone 1
    assert _same(kernel, mine) == 20


def test_the_kubelets_probe_is_accepted_in_nat_and_reaches_the_app(node: NamespaceSet) -> None:
    mine, ends = _traced("redirect-probe")
    procs = [_spawn(node, "vethreviewsv1", do="listen", bind=["0.0.0.0", 9080])]
    try:
        assert _said(procs[0])["event"] == "ready"
        _zero(node)
        procs.append(_spawn(node, "node", do="connect", bind=["10.244.2.1", 46000], dst=["10.244.2.7", 9080]))
        assert _said(procs[1]) == {"event": "connected", "peer": "10.244.2.7:9080"}
        app = _said(procs[0])
        kernel = _kernel(node)
    finally:
        _stop(procs)
    assert app["peer"] == "169.254.7.127:46000" and ends == ["socket app 9080", "socket kubelet"]
    assert _same(kernel, mine) == 10


def test_the_same_tuple_in_two_zones_is_two_connections(node: NamespaceSet) -> None:
    mine, ends = _traced("redirect-dns-port-reuse")
    procs = [_spawn(node, "world", do="udp-echo", bind=["10.96.0.10", 53], answer=False),
             _spawn(node, "vethproductpage", do="udp-listen", bind=["127.0.0.1", 15053], mark=MARK)]
    try:
        assert _said(procs[0])["event"] == "ready" and _said(procs[1])["event"] == "ready"
        _zero(node)
        for mark in (0, MARK):  # the app's query, then ztunnel's from the same port
            procs.append(_spawn(node, "vethproductpage", do="udp-send", bind=["10.244.2.3", 53000], mark=mark,
                                dst=["10.96.0.10", 53]))
            assert _said(procs[-1])["event"] == "sent"
        far, proxy = _said(procs[0]), _said(procs[1])
        kernel = _kernel(node)
        entries = node.run("vethproductpage", "conntrack", "-L", "-p", "udp")
    finally:
        _stop(procs)
    assert proxy["peer"] == "10.244.2.3:53000"  # the app's query reached the DNS proxy
    assert far["peer"] == "10.244.2.3:53000"  # ztunnel's query reached kube-dns: not sent back to 15053
    assert ends == ["socket ztunnel 15053 (DNS proxy)", "leaves for the rest of the cluster (eth0)"]
    same = [line for line in entries.splitlines() if "src=10.244.2.3 dst=10.96.0.10 sport=53000 dport=53 " in line]
    assert len(same) == 2 and sorted("zone=1" in line for line in same) == [False, True]
    assert _same(kernel, mine) == 12
