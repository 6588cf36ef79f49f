"""The in-pod design (Istio 1.21+) as a :class:`~ambientlab.core.trace.network.Network`, and the
book's walks through it.

The node and every pod folder of an in-pod capture become machines: the node with its probe
SNAT rule and ipset, each recorded pod with the rules istio-cni installs in its namespace.
ztunnel's sockets live *inside* each pod's namespace (ztunnel opens them there through the
namespace file descriptor the CNI agent hands it), all marked 0x539 (``inpod_mark: 1337``).
Pods without a folder, and the rest of the cluster, are endpoints.
"""

from __future__ import annotations

from ambientlab.core.capture import Capture
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.build import host_from_capture
from ambientlab.core.trace.demo import WORLD, _ipsets, pod_names, short_name
from ambientlab.core.trace.netfilter import Packet, Ruleset
from ambientlab.core.trace.network import Exit, Machine, Network, Socket
from ambientlab.core.trace.scenarios import Send, tcp

IP = ipv4.to_int
INPOD_MARK = 0x539
PRODUCTPAGE, REVIEWS_V1, HOST_IP = IP("10.244.2.3"), IP("10.244.2.7"), IP("10.244.2.1")
REMOTE_POD = IP("10.244.1.5")  # a mesh pod on another node (assumed: an address of that node's pod CIDR)
PROBE_SOURCE = IP("169.254.7.127")


def pod_folders(capture: Capture) -> list[str]:
    """Return the capture's pod folders: every folder other than node/ and cluster/ that has
    an ``iptables-save.txt``."""
    folders = {p.split("/")[0] for p in capture.files.index if p.endswith("/iptables-save.txt")}
    return sorted(folders - {"node", "cluster"})


def inpod_network(capture: Capture) -> Network:
    """Return the network of an in-pod capture: node, recorded pods (with ztunnel's listeners
    inside), the other pods as endpoints and ``eth0`` leading to the rest of the cluster."""
    node = Machine(host_from_capture(capture, "node"))
    ipsets = _ipsets(capture, "node/ipset-list.txt") if "node/ipset-list.txt" in capture.files.index else {}
    node.rules = Ruleset(capture.text("node/iptables-save.txt"), f"{capture.name}/node/iptables-save.txt", ipsets)
    net = Network()
    net.add(node)
    pods = {}
    for folder in pod_folders(capture):
        pod = Machine(host_from_capture(capture, folder))
        pod.rules = Ruleset(capture.text(f"{folder}/iptables-save.txt"), f"{capture.name}/{folder}/iptables-save.txt")
        pod.sockets += [  # ztunnel's listeners in this pod's namespace (ztunnel ARCHITECTURE.md: ports)
            Socket("ztunnel 15001 (outbound)", (0, 15001), mark=INPOD_MARK),
            Socket("ztunnel 15006 (inbound plaintext)", (0, 15006), transparent=True, mark=INPOD_MARK),
            Socket("ztunnel 15008 (inbound HBONE)", (0, 15008), transparent=True, mark=INPOD_MARK),
            Socket("app 9080", (0, 9080)),
        ]
        net.add(pod)
        pods[next(a.local for a in pod.host.devices["eth0"].addrs)] = folder
    names = pod_names(capture)
    for route in node.host.fib.tables[ipv4.TABLES["main"]].routes:
        if route.length == 32 and route.nexthops and route.record.get("scope") == "host":
            dev = route.nexthops[0].dev
            if route.network in pods:
                net.veth(("node", dev), (pods[route.network], "eth0"))
            else:
                ip = ipv4.to_text(route.network)
                net.exit(("node", dev), Exit("pod", short_name(names.get(ip, ip))))
    net.exit(("node", "eth0"), Exit("world", WORLD))
    return net


def _connected(net: Network, machine: str, name: str, local: tuple[int, int], remote: tuple[int, int],
               mark: int = INPOD_MARK, transparent: bool = True) -> None:
    net.machines[machine].sockets.append(Socket(name, local, remote, transparent=transparent, mark=mark))


def outbound(net: Network) -> list[Send]:
    """productpage's app connects to a mesh pod on another node (10.244.1.5, assumed; the in-pod
    capture keeps reviews-v1 on this node): REDIRECT to ztunnel's 15001 in productpage's own
    namespace; ztunnel's HBONE connection (mark 0x539) leaves untouched."""
    _connected(net, "productpage-v1", "ztunnel HBONE to the remote pod", (PRODUCTPAGE, 43000), (REMOTE_POD, 15008))
    return [
        Send("1 SYN app -> remote pod:9080", "productpage-v1", tcp(PRODUCTPAGE, 40000, REMOTE_POD, 9080, "S")),
        Send("2 HBONE SYN ztunnel -> remote pod:15008", "productpage-v1",
             tcp(PRODUCTPAGE, 43000, REMOTE_POD, 15008, "S"), INPOD_MARK),
        Send("3 HBONE SYN-ACK from ambient-worker", WORLD, tcp(REMOTE_POD, 15008, PRODUCTPAGE, 43000, "SA")),
    ]


def inbound(net: Network) -> list[Send]:
    """HBONE from a pod on another node to reviews-v1 here: TPROXY to 15008 inside reviews-v1's
    namespace; ztunnel dials the app with the client's address, and the app's answer goes back
    to ztunnel by the connection mark 0x111."""
    _connected(net, "reviews-v1", "ztunnel to the app (client's address)", (REMOTE_POD, 44000), (REVIEWS_V1, 9080))
    return [
        Send("1 HBONE SYN remote pod -> reviews-v1:15008", WORLD, tcp(REMOTE_POD, 50000, REVIEWS_V1, 15008, "S")),
        Send("2 HBONE SYN-ACK ztunnel -> remote pod", "reviews-v1", tcp(REVIEWS_V1, 15008, REMOTE_POD, 50000, "SA"),
             INPOD_MARK, True),
        Send("3 SYN ztunnel (as 10.244.1.5) -> app:9080", "reviews-v1", tcp(REMOTE_POD, 44000, REVIEWS_V1, 9080, "S"),
             INPOD_MARK, True),
        Send("4 SYN-ACK app -> 10.244.1.5", "reviews-v1", tcp(REVIEWS_V1, 9080, REMOTE_POD, 44000, "SA")),
    ]


def same_node(net: Network) -> list[Send]:
    """productpage's app connects to reviews-v1 on the same node: 15001 in productpage's
    namespace, then ztunnel's onward connection (plain here, as in the lab's stand-in) is taken
    by 15006 in reviews-v1's namespace, which dials the app with productpage's address."""
    _connected(net, "productpage-v1", "ztunnel onward to reviews-v1", (PRODUCTPAGE, 41000), (REVIEWS_V1, 9080))
    _connected(net, "reviews-v1", "ztunnel to the app (client's address)", (PRODUCTPAGE, 42000), (REVIEWS_V1, 9080))
    return [
        Send("1 SYN app -> reviews-v1:9080", "productpage-v1", tcp(PRODUCTPAGE, 40000, REVIEWS_V1, 9080, "S")),
        Send("2 SYN ztunnel -> reviews-v1:9080", "productpage-v1", tcp(PRODUCTPAGE, 41000, REVIEWS_V1, 9080, "S"),
             INPOD_MARK),
        Send("3 SYN ztunnel (as productpage) -> app:9080", "reviews-v1", tcp(PRODUCTPAGE, 42000, REVIEWS_V1, 9080, "S"),
             INPOD_MARK, True),
        Send("4 SYN-ACK app -> productpage", "reviews-v1", tcp(REVIEWS_V1, 9080, PRODUCTPAGE, 42000, "SA")),
    ]


def plaintext_inbound(net: Network) -> list[Send]:
    """A client outside the mesh connects to reviews-v1: TPROXY to 15006 inside the pod."""
    return [Send("1 SYN outside client -> reviews-v1:9080", WORLD, tcp(IP("10.244.0.6"), 45000, REVIEWS_V1, 9080, "S"))]


def probe(net: Network) -> list[Send]:
    """The kubelet probes reviews-v1: the node SNATs it to 169.254.7.127, which the pod lets
    through to the app; the answer goes back by conntrack."""
    net.machines["node"].sockets.append(Socket("kubelet", (HOST_IP, 46000), (REVIEWS_V1, 9080)))
    return [
        Send("1 SYN kubelet -> reviews-v1:9080", "node", tcp(HOST_IP, 46000, REVIEWS_V1, 9080, "S")),
        Send("2 SYN-ACK app -> 169.254.7.127", "reviews-v1", tcp(REVIEWS_V1, 9080, PROBE_SOURCE, 46000, "SA")),
    ]


# -- today's rules (REDIRECT, Istio 1.24 and later: capture inpod-redirect-ambient-worker2) ----------------
KUBE_DNS = IP("10.96.0.10")  # kube-dns's cluster IP (assumed: kind's default service CIDR's tenth address)
DNS_PORT, DNS_PROXY_PORT = 53, 15053


def udp(src: int, sport: int, dst: int, dport: int, what: str) -> Packet:
    """Return a UDP packet with these addresses and ports; ``what`` is shown as its flags (``query``)."""
    return Packet(src=src, dst=dst, proto=17, sport=sport, dport=dport, flags=what)


def redirect_network(capture: Capture) -> Network:
    """Return :func:`inpod_network` of a capture with today's rules, plus ztunnel's DNS proxy in
    each recorded pod (127.0.0.1:15053, assumed: ztunnel's in-pod DNS listener), the delivery
    rows naming the original destination a REDIRECTed listener reads (SO_ORIGINAL_DST), and a row
    wherever conntrack translates a packet that no nat rule saw."""
    net = inpod_network(capture)
    for machine in net.machines.values():
        if machine.name != "node":
            machine.sockets.append(Socket("ztunnel 15053 (DNS proxy)", (IP("127.0.0.1"), DNS_PROXY_PORT),
                                          mark=INPOD_MARK))
    net.show_original_dst = True
    net.show_conntrack = True  # where conntrack rewrites a packet no nat rule saw (the DNS answer, the probe's reply)
    return net


def redirect_inbound_plaintext(net: Network) -> list[Send]:
    """A client outside the mesh connects to reviews-v1:9080: the nat table's REDIRECT in
    PREROUTING sends it to ztunnel's 15006 inside the pod (the destination becomes the pod's own
    address, port 15006; ztunnel reads the original with SO_ORIGINAL_DST); ztunnel dials the app
    with the client's address, and the app's answer returns to ztunnel by the connection mark 0x111."""
    client = IP("10.244.0.6")  # a pod outside the mesh on the control-plane node (assumed)
    _connected(net, "reviews-v1", "ztunnel to the app (client's address)", (client, 44000), (REVIEWS_V1, 9080))
    return [
        Send("1 SYN outside client -> reviews-v1:9080", WORLD, tcp(client, 45000, REVIEWS_V1, 9080, "S")),
        Send("2 SYN ztunnel (as the client) -> app:9080", "reviews-v1", tcp(client, 44000, REVIEWS_V1, 9080, "S"),
             INPOD_MARK, True),
        Send("3 SYN-ACK app -> the client's address", "reviews-v1", tcp(REVIEWS_V1, 9080, client, 44000, "SA")),
    ]


def redirect_inbound_hbone(net: Network) -> list[Send]:
    """HBONE from a pod on another node to reviews-v1:15008: no rule touches it (the REDIRECT to
    15006 skips port 15008), so it reaches ztunnel's 15008 listener inside the pod as addressed;
    ztunnel dials the app with the client's address, and the app's answer returns to ztunnel by
    the connection mark 0x111."""
    return inbound(net)


def dns(net: Network) -> list[Send]:
    """productpage's app asks kube-dns (10.96.0.10:53, assumed) over UDP: REDIRECT in OUTPUT
    sends the query to ztunnel's DNS proxy on 127.0.0.1:15053; ztunnel's own query upstream
    (mark 0x539) is put in conntrack zone 1 by the raw table, and so is kube-dns's answer; the
    proxy's reply to the app leaves with source 127.0.0.1:15053 and conntrack rewrites it to
    10.96.0.10:53, the address the app asked."""
    app, proxy_port = (PRODUCTPAGE, 53000), 54000
    net.machines["productpage-v1"].sockets += [
        Socket("app's resolver", app, (KUBE_DNS, DNS_PORT)),
        Socket("ztunnel's query to kube-dns", (PRODUCTPAGE, proxy_port), (KUBE_DNS, DNS_PORT), mark=INPOD_MARK),
    ]
    return [
        Send("1 query app -> kube-dns:53", "productpage-v1", udp(*app, KUBE_DNS, DNS_PORT, "query")),
        Send("2 query ztunnel -> kube-dns:53", "productpage-v1",
             udp(PRODUCTPAGE, proxy_port, KUBE_DNS, DNS_PORT, "query"), INPOD_MARK),
        Send("3 answer kube-dns -> ztunnel", WORLD, udp(KUBE_DNS, DNS_PORT, PRODUCTPAGE, proxy_port, "answer")),
        Send("4 answer ztunnel's DNS proxy -> app", "productpage-v1",
             udp(IP("127.0.0.1"), DNS_PROXY_PORT, *app, "answer"), INPOD_MARK),
    ]


def dns_port_reuse(net: Network) -> list[Send]:
    """The collision conntrack zones avoid: the app's query from port 53000 is REDIRECTed to
    15053 and its conntrack entry stays (about 30 s); ztunnel's own query then leaves from the
    same port (the app's socket closed; assumed). Same tuple, but the raw table puts ztunnel's
    (mark 0x539) in zone 1: a connection of its own, not the app's REDIRECTed one, so it leaves
    for kube-dns instead of being sent back to ztunnel."""
    app = (PRODUCTPAGE, 53000)
    return [
        Send("1 query app -> kube-dns:53", "productpage-v1", udp(*app, KUBE_DNS, DNS_PORT, "query")),
        Send("2 query ztunnel -> kube-dns:53, same port", "productpage-v1", udp(*app, KUBE_DNS, DNS_PORT, "query"),
             INPOD_MARK),
    ]
