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
from ambientlab.core.trace.netfilter import Ruleset
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
