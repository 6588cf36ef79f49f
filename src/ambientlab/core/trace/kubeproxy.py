"""The demo node with kube-proxy's service chains: the walks of traffic that kube-proxy
translates (a pod outside the mesh calling a service) and of traffic it never sees (a mesh pod's).

:func:`kube_proxy_network` is the demo network (:func:`~ambientlab.core.trace.demo.demo_network`)
with the node's rules read from the reconstructed ``node/iptables-save-kube-proxy.txt`` instead of
``node/iptables-save.txt``, and one more pod: details-v1's second replica, outside the mesh, on this
node (10.244.2.4 on ``vethdetails``, wired as the CNI ptp plugin wires the others: an assumption,
as the manifest says). kube-proxy picks a service's endpoint at random; each walk pins the one it
follows (:meth:`~ambientlab.core.trace.netfilter.Ruleset.pin`), and :func:`service_branches` lists
them all with their chances.
"""

from __future__ import annotations

import pandas as pd

from ambientlab.core.capture import Capture
from ambientlab.core.parse.ip_route import parse_ip_route_records
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.demo import WORLD, demo_network
from ambientlab.core.trace.fib import Fib, route_from_record
from ambientlab.core.trace.host import Address, Device
from ambientlab.core.trace.netfilter import Ruleset, branches
from ambientlab.core.trace.network import Exit, Network, Socket
from ambientlab.core.trace.scenarios import (
    PRODUCTPAGE,
    REMOTE_REVIEWS_V1,
    REVIEWS_V2,
    REVIEWS_VIP,
    Send,
    _listeners,
    tcp,
)

KUBE_PROXY_RULES = "node/iptables-save-kube-proxy.txt"
DETAILS, DETAILS_VETH = ipv4.to_int("10.244.2.4"), "vethdetails"  # assumed: details-v1's second replica
NODE_ETH0 = ipv4.to_int("172.18.0.2")  # the node's own address (assumed in the capture's manifest)
REVIEWS_SVC = "default/reviews:http"


def kube_proxy_network(capture: Capture) -> Network:
    """Return the demo network of ``capture`` with kube-proxy's chains on the node and the
    details-v1 pod outside the mesh on ``vethdetails`` (see the module's text). A ValueError if
    the capture has no reconstructed kube-proxy rules."""
    if KUBE_PROXY_RULES not in capture.files.index:
        raise ValueError(f"capture {capture.name} has no {KUBE_PROXY_RULES} (kube-proxy's chains)")
    net = demo_network(capture)
    node = net.machines["node"]
    assert node.rules is not None
    node.rules = Ruleset(capture.text(KUBE_PROXY_RULES), f"{capture.name}/{KUBE_PROXY_RULES}", node.rules.ipsets)
    host = node.host
    host_ip = ipv4.to_int("10.244.2.1")
    host.devices[DETAILS_VETH] = Device(DETAILS_VETH, max(d.index for d in host.devices.values()) + 1,
                                        addrs=[Address(host_ip, 32, 0)])
    text = f"{ipv4.to_text(DETAILS)} dev {DETAILS_VETH} scope host\n"
    source = "assumed: details-v1 (second replica) on this node"
    records, lines = parse_ip_route_records(text, source)
    added = [route_from_record(r, n, source, "main") for r, n in zip(records, lines, strict=True)]
    routes = [r for t in host.fib.tables.values() for r in t.routes]
    host.fib = Fib.from_parts(host.fib.rules, routes + added, unmerged=host.fib.unmerged)
    net.exit(("node", DETAILS_VETH), Exit("pod", "details-v1"))
    net.show_conntrack = True
    return net


def service_branches(capture: Capture, service: str = REVIEWS_SVC) -> pd.DataFrame:
    """Return the branches kube-proxy's chain for ``service`` (``NAMESPACE/NAME:PORT``) offers a
    new connection, read from the reconstructed rules: one row per endpoint with the rule's line,
    the probability it is written with, the chance a connection takes it (that probability times
    the chance that every earlier draw failed), its ``KUBE-SEP-…`` chain and the endpoint it DNATs to."""
    rules = kube_proxy_network(capture).machines["node"].rules
    assert rules is not None
    marker = f'"{service} cluster IP"'
    chain = next((rec["target"] for _, rec, _ in rules.chains[("nat", "KUBE-SERVICES")] if marker in rec["text"]), None)
    if chain is None:
        raise KeyError(f"no service {service} in {rules.source}")
    rows = []
    for branch in branches(rules, "nat", chain):
        dnat = [rec for _, rec, _ in rules.chains[("nat", branch["target"])] if rec.get("target") == "DNAT"]
        endpoint = dnat[0]["target_options"][0]["args"][0]
        rows.append({"chain": chain, "line": f"{rules.source}:{branch['line']}", "probability": branch["probability"],
                     "chance": round(branch["chance"], 6), "endpoint chain": branch["target"], "endpoint": endpoint})
    return pd.DataFrame(rows)


def _pin(net: Network, endpoint: str) -> None:
    rules = net.machines["node"].rules
    assert rules is not None
    rules.pin("nat", endpoint)


def outside_mesh_remote(net: Network) -> list[Send]:
    """details-v1 (outside the mesh, on this node) -> the reviews service, kube-proxy's draw pinned
    to reviews-v1 on ambient-worker: DNAT in PREROUTING, out by eth0; the answer is translated
    back to the service address by conntrack."""
    _pin(net, f"{ipv4.to_text(REMOTE_REVIEWS_V1)}:9080")
    return [
        Send("1 SYN details-v1 -> reviews service", "details-v1", tcp(DETAILS, 41000, REVIEWS_VIP, 9080, "S")),
        Send("2 SYN-ACK reviews-v1 (ambient-worker) -> details-v1", WORLD,
             tcp(REMOTE_REVIEWS_V1, 9080, DETAILS, 41000, "SA")),
        Send("3 ACK details-v1 -> reviews service", "details-v1", tcp(DETAILS, 41000, REVIEWS_VIP, 9080, "A")),
    ]


def outside_mesh_local(net: Network) -> list[Send]:
    """details-v1 -> the reviews service, the draw pinned to reviews-v2 on this node: after the
    DNAT, table 100 hands the packet to ztunnel's plaintext inbound port 15006 (reviews-v2 is in
    the mesh); ztunnel's answer, as reviews-v2, is translated back to the service address."""
    _pin(net, f"{ipv4.to_text(REVIEWS_V2)}:9080")
    _listeners(net)
    return [
        Send("1 SYN details-v1 -> reviews service", "details-v1", tcp(DETAILS, 41001, REVIEWS_VIP, 9080, "S")),
        Send("2 SYN-ACK ztunnel (as reviews-v2) -> details-v1", "ztunnel",
             tcp(REVIEWS_V2, 9080, DETAILS, 41001, "SA"), 0x402, True),
        Send("3 ACK details-v1 -> reviews service", "details-v1", tcp(DETAILS, 41001, REVIEWS_VIP, 9080, "A")),
    ]


def node_to_service(net: Network) -> list[Send]:
    """A process of the node itself (source 172.18.0.2, outside the cluster CIDR) -> the reviews
    service, pinned to reviews-v1 on ambient-worker: KUBE-MARK-MASQ sets 0x4000 in OUTPUT, and
    KUBE-POSTROUTING masquerades the packet (the kernel picks a random source port:
    ``--random-fully``; the walk keeps the port)."""
    _pin(net, f"{ipv4.to_text(REMOTE_REVIEWS_V1)}:9080")
    net.machines["node"].sockets.append(Socket("a node process", (NODE_ETH0, 42000), (REVIEWS_VIP, 9080)))
    return [
        Send("1 SYN node -> reviews service", "node", tcp(NODE_ETH0, 42000, REVIEWS_VIP, 9080, "S")),
        Send("2 SYN-ACK reviews-v1 (ambient-worker) -> node", WORLD, tcp(REMOTE_REVIEWS_V1, 9080, NODE_ETH0, 42000, "SA")),
    ]


def mesh_pod_to_service(net: Network) -> list[Send]:
    """productpage (in the mesh) -> the reviews service on the node with kube-proxy's chains:
    the mangle table marks it 0x100 and the nat table ACCEPTs it before KUBE-SERVICES, so it
    reaches ztunnel with the service address. (The draw is pinned to reviews-v2, for the break
    that removes that ACCEPT.)"""
    _pin(net, f"{ipv4.to_text(REVIEWS_V2)}:9080")
    _listeners(net)
    return [Send("1 SYN productpage -> reviews service", "productpage-v1", tcp(PRODUCTPAGE, 40000, REVIEWS_VIP, 9080, "S"))]
