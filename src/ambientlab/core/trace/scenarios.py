"""The book's named packet walks on the demo capture, as hop tables.

Each scenario is a short script: which packets are sent, by whom, in which order. The path of
every packet is computed by :class:`~ambientlab.core.trace.network.Network` from the capture; the
scenario only plays the applications (the pods and ztunnel's sockets). ztunnel plays the Sept
2022 Envoy build: listeners marked 0x401 (15001) and 0x402 (15006, 15008), onward connections
with mark 0x4d2 from the *downstream peer's* address (``original_src``, a transparent socket):
the client ztunnel's address for HBONE, the client's own address only for plaintext
inbound (15006, from a client outside the mesh) and passthrough — except in ``no-socket-marks``, which plays the 2023 Rust
ztunnel (no socket marks).

One pod layout (Zhao's part 3): reviews-v1 runs on ambient-worker (10.244.1.23); the on-node
destination is reviews-v2 (10.244.2.5). The capture's files still name 10.244.2.7, where
reviews-v1 ran when the node was recorded; no walk sends to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ambientlab.core.trace import ipv4
from ambientlab.core.trace.demo import WORLD
from ambientlab.core.trace.netfilter import Packet
from ambientlab.core.trace.network import HOP_COLUMNS, Network, Socket

IP = ipv4.to_int
PRODUCTPAGE, RATINGS, REVIEWS_V2 = IP("10.244.2.3"), IP("10.244.2.2"), IP("10.244.2.5")
ZTUNNEL, HOST_IP = IP("10.244.2.10"), IP("10.244.2.1")
REVIEWS_VIP = IP("10.96.183.192")  # recorded in Zhao's part 3 (S11)
REMOTE_REVIEWS_V1 = IP("10.244.1.23")  # reviews-v1 after it moved to ambient-worker (part 3, S11)
REMOTE_ZTUNNEL = IP("10.244.1.19")  # ztunnel-w59fl on ambient-worker (recorded)
OUTSIDE_CLIENT = IP("10.244.1.9")  # a pod on ambient-worker outside the mesh (assumed: in no ipset)
TCP, UDP = 6, 17


@dataclass(frozen=True)
class Send:
    """One packet of a scenario: who sends it and with which socket properties."""

    label: str
    origin: str
    packet: Packet
    socket_mark: int = 0
    transparent: bool = False


def tcp(src: int, sport: int, dst: int, dport: int, flags: str) -> Packet:
    """Return a TCP packet with these addresses, ports and flags (``S``, ``SA``, ``A``…)."""
    return Packet(src=src, dst=dst, proto=TCP, sport=sport, dport=dport, flags=flags)


def _listeners(net: Network) -> None:
    net.machines["ztunnel"].sockets += [
        Socket("ztunnel_outbound (15001)", (IP("127.0.0.1"), 15001), transparent=True, mark=0x401),
        Socket("ztunnel_inbound_plaintext (15006)", (IP("127.0.0.1"), 15006), transparent=True, mark=0x402),
        Socket("ztunnel_inbound (15008)", (IP("127.0.0.1"), 15008), transparent=True, mark=0x402),
        Socket("ztunnel_inbound (15008, all addresses)", (0, 15008), mark=0x402),
    ]


def _connected(net: Network, machine: str, name: str, local: tuple[int, int], remote: tuple[int, int]) -> None:
    net.machines[machine].sockets.append(Socket(name, local, remote, transparent=True))


def _syn_to_reviews_vip() -> Send:
    """productpage's SYN to the reviews service: how the VIP scenarios start."""
    return Send("1 SYN productpage -> reviews VIP", "productpage-v1", tcp(PRODUCTPAGE, 40000, REVIEWS_VIP, 9080, "S"))


def same_node_vip(net: Network) -> list[Send]:
    """productpage -> reviews VIP; ztunnel picks reviews-v2 on the same node (HBONE to itself)."""
    _listeners(net)
    _connected(net, "ztunnel", "accepted from productpage", (REVIEWS_VIP, 9080), (PRODUCTPAGE, 40000))
    _connected(net, "ztunnel", "HBONE to reviews-v2", (ZTUNNEL, 41000), (REVIEWS_V2, 15088))
    _connected(net, "ztunnel", "to reviews-v2 (source: the HBONE peer, ztunnel itself)", (ZTUNNEL, 42000), (REVIEWS_V2, 9080))
    return [
        _syn_to_reviews_vip(),
        Send("2 SYN-ACK ztunnel (as the VIP) -> productpage", "ztunnel",
             tcp(REVIEWS_VIP, 9080, PRODUCTPAGE, 40000, "SA"), 0x401, True),
        Send("3 HBONE SYN ztunnel -> reviews-v2:15088", "ztunnel", tcp(ZTUNNEL, 41000, REVIEWS_V2, 15088, "S")),
        Send("4 SYN ztunnel -> reviews-v2:9080", "ztunnel", tcp(ZTUNNEL, 42000, REVIEWS_V2, 9080, "S"), 0x4D2, True),
        Send("5 SYN-ACK reviews-v2 -> ztunnel", "reviews-v2", tcp(REVIEWS_V2, 9080, ZTUNNEL, 42000, "SA")),
    ]


def cross_node_hbone(net: Network) -> list[Send]:
    """productpage -> reviews VIP; ztunnel picks reviews-v1 on ambient-worker: HBONE leaves by eth0."""
    _listeners(net)
    _connected(net, "ztunnel", "HBONE to reviews-v1 on ambient-worker", (ZTUNNEL, 43000), (REMOTE_REVIEWS_V1, 15008))
    return [
        _syn_to_reviews_vip(),
        Send("2 HBONE SYN ztunnel -> reviews-v1:15008 (ambient-worker)", "ztunnel",
             tcp(ZTUNNEL, 43000, REMOTE_REVIEWS_V1, 15008, "S")),
        Send("3 HBONE SYN-ACK from ambient-worker", WORLD, tcp(REMOTE_REVIEWS_V1, 15008, ZTUNNEL, 43000, "SA")),
    ]


def inbound_remote(net: Network) -> list[Send]:
    """HBONE from ambient-worker's ztunnel to reviews-v2 here; ztunnel dials reviews-v2 with the
    HBONE peer's address (the remote ztunnel's), and the replies come back through connmark
    0x210 -> mark 0x40 -> table 102."""
    _listeners(net)
    _connected(net, "ztunnel", "to reviews-v2 (source: the HBONE peer, the remote ztunnel)", (REMOTE_ZTUNNEL, 44000),
               (REVIEWS_V2, 9080))
    return [
        Send("1 HBONE SYN remote ztunnel -> reviews-v2:15008", WORLD, tcp(REMOTE_ZTUNNEL, 50000, REVIEWS_V2, 15008, "S")),
        Send("2 HBONE SYN-ACK ztunnel -> remote ztunnel", "ztunnel",
             tcp(REVIEWS_V2, 15008, REMOTE_ZTUNNEL, 50000, "SA"), 0x402, True),
        Send("3 SYN ztunnel (as 10.244.1.19) -> reviews-v2:9080", "ztunnel",
             tcp(REMOTE_ZTUNNEL, 44000, REVIEWS_V2, 9080, "S"), 0x4D2, True),
        Send("4 SYN-ACK reviews-v2 -> 10.244.1.19 (borrowed source)", "reviews-v2",
             tcp(REVIEWS_V2, 9080, REMOTE_ZTUNNEL, 44000, "SA")),
    ]


def _outside_mesh(net: Network) -> None:
    """Take ratings out of the node's ipset, as if its namespace had lost the ambient label."""
    net.machines["node"].rules.ipsets["ztunnel-pods-ips"].discard(RATINGS)  # type: ignore[union-attr]


def pod_not_in_ipset(net: Network) -> list[Send]:
    """ratings taken out of the ipset (as if its namespace were not labelled) calls reviews-v2:
    no outbound capture, but table 100 still sends it to ztunnel's plaintext inbound port 15006."""
    _outside_mesh(net)
    _listeners(net)
    return [Send("1 SYN ratings -> reviews-v2", "ratings-v1", tcp(RATINGS, 46000, REVIEWS_V2, 9080, "S"))]


def borrowed_source(net: Network) -> list[Send]:
    """A client outside the mesh on ambient-worker (10.244.1.9, in no ipset: assumed) calls
    reviews-v2 in plaintext; table 100 brings it to ztunnel's 15006 (packet 0), and ztunnel passes
    it on with the client's own address: out with 0x210, replies via 0x40 and table 102."""
    _listeners(net)
    _connected(net, "ztunnel", "to reviews-v2 (source: the client outside the mesh)", (OUTSIDE_CLIENT, 45000),
               (REVIEWS_V2, 9080))
    return [
        Send("0 SYN outside client 10.244.1.9 -> reviews-v2:9080 (from ambient-worker)", WORLD,
             tcp(OUTSIDE_CLIENT, 46000, REVIEWS_V2, 9080, "S")),
        Send("1 SYN ztunnel (as 10.244.1.9) -> reviews-v2", "ztunnel",
             tcp(OUTSIDE_CLIENT, 45000, REVIEWS_V2, 9080, "S"), 0x4D2, True),
        Send("2 SYN-ACK reviews-v2 -> 10.244.1.9", "reviews-v2", tcp(REVIEWS_V2, 9080, OUTSIDE_CLIENT, 45000, "SA")),
        Send("3 ACK ztunnel (as 10.244.1.9) -> reviews-v2", "ztunnel",
             tcp(OUTSIDE_CLIENT, 45000, REVIEWS_V2, 9080, "A"), 0x4D2, True),
        Send("4 data reviews-v2 -> 10.244.1.9", "reviews-v2", tcp(REVIEWS_V2, 9080, OUTSIDE_CLIENT, 45000, "PA")),
    ]


def kubelet(net: Network) -> list[Send]:
    """A kubelet probe from the node (source 10.244.2.1) to productpage, and the answer."""
    net.machines["node"].sockets.append(Socket("kubelet probe", (HOST_IP, 47000), (PRODUCTPAGE, 9080)))
    return [
        Send("1 SYN kubelet -> productpage:9080", "node", tcp(HOST_IP, 47000, PRODUCTPAGE, 9080, "S")),
        Send("2 SYN-ACK productpage -> kubelet", "productpage-v1", tcp(PRODUCTPAGE, 9080, HOST_IP, 47000, "SA")),
    ]


def ztunnel_own(net: Network) -> list[Send]:
    """ztunnel's own traffic (a control-plane TCP connection, a DNS query) and the geneve
    packets that carry a captured SYN to it."""
    _listeners(net)
    istiod, dns = IP("10.244.0.5"), IP("10.244.0.2")  # control-plane pods: addresses assumed
    _connected(net, "ztunnel", "xDS client", (ZTUNNEL, 48000), (istiod, 15012))
    return [
        Send("1 SYN ztunnel -> control plane (xDS)", "ztunnel", tcp(ZTUNNEL, 48000, istiod, 15012, "S")),
        Send("2 SYN-ACK control plane -> ztunnel", WORLD, tcp(istiod, 15012, ZTUNNEL, 48000, "SA")),
        Send("3 DNS query ztunnel -> DNS pod", "ztunnel", Packet(src=ZTUNNEL, dst=dns, proto=UDP, sport=53000, dport=53)),
        Send("4 SYN productpage -> reviews-v2 (geneve to ztunnel)", "productpage-v1",
             tcp(PRODUCTPAGE, 40001, REVIEWS_V2, 9080, "S")),
    ]


def no_socket_marks(net: Network) -> list[Send]:
    """The 2023 Rust ztunnel, with no socket marks: only the SYN uses the tunnel; ztunnel's
    answers leave by eth0 (0x210), and productpage's next packets come back via 0x40."""
    net.machines["ztunnel"].sockets.append(
        Socket("ztunnel outbound (15001)", (IP("127.0.0.1"), 15001), transparent=True))
    _connected(net, "ztunnel", "accepted from productpage", (REVIEWS_V2, 9080), (PRODUCTPAGE, 40002))
    return [
        Send("1 SYN productpage -> reviews-v2", "productpage-v1", tcp(PRODUCTPAGE, 40002, REVIEWS_V2, 9080, "S")),
        Send("2 SYN-ACK ztunnel (as reviews-v2) -> productpage", "ztunnel",
             tcp(REVIEWS_V2, 9080, PRODUCTPAGE, 40002, "SA"), 0, True),
        Send("3 ACK productpage -> reviews-v2", "productpage-v1", tcp(PRODUCTPAGE, 40002, REVIEWS_V2, 9080, "A")),
    ]


def play(net: Network, sends: list[Send]) -> pd.DataFrame:
    """Return the hop table of ``sends`` played in order on ``net`` (state carries over)."""
    rows = []
    for send in sends:
        rows += net.send(send.label, send.packet, origin=send.origin, socket_mark=send.socket_mark,
                         transparent=send.transparent)
    frame = pd.DataFrame(rows, columns=list(HOP_COLUMNS))
    frame.index.name = "hop"
    return frame
