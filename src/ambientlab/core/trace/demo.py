"""The demo capture as a :class:`~ambientlab.core.trace.network.Network`: the node and its ztunnel
pod as machines, the app pods as endpoints, ``eth0`` leading to the rest of the cluster."""

from __future__ import annotations

from ambientlab.core.capture import Capture
from ambientlab.core.parse import to_records
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.build import host_from_capture
from ambientlab.core.trace.netfilter import Ruleset
from ambientlab.core.trace.network import Exit, Machine, Network, Tunnel

WORLD = "the rest of the cluster (eth0)"
SECOND = "worker-"  # the prefix of the second node's machine and pod names in a two-node network


def _ipsets(capture: Capture, path: str) -> dict[str, set[int]]:
    members = capture.parse(path).members
    out: dict[str, set[int]] = {}
    for name, elem in zip(members["set"], members["elem"], strict=True):
        out.setdefault(name, set()).add(ipv4.to_int(elem))
    return out


def _tunnels(capture: Capture, folder: str) -> dict[str, Tunnel]:
    out = {}
    for path in capture.files.index:
        if path.startswith(f"{folder}/ip-d-link-"):
            for rec in to_records("ip-link", capture.parse(path)):
                data = rec["linkinfo"]["info_data"]
                out[rec["ifname"]] = Tunnel(int(data["id"]), ipv4.to_int(data["remote"]), int(data.get("port", 6081)))
    return out


def kubectl_pods(capture: Capture) -> list[tuple[str, str, str]]:
    """Return (file, pod name, pod IP) of every pod in the capture's ``kubectl get pod`` outputs."""
    out = []
    for path in capture.files.index:
        if path.startswith("cluster/kubectl-get-pods"):
            frame = capture.parse(path)
            out += [(path, str(n), str(ip)) for n, ip in zip(frame["NAME"], frame["IP"], strict=True)]
    return out


def pod_names(capture: Capture) -> dict[str, str]:
    """Return {pod IP: pod name} from the capture's ``kubectl get pod`` outputs."""
    return {ip: name for _, name, ip in kubectl_pods(capture)}


def pod_addresses(capture: Capture) -> dict[str, str]:
    """Return {pod short name (:func:`short_name`): pod IP} from the capture's ``kubectl get pod``
    outputs, in the order of the pods' full names."""
    return {short_name(name): ip for ip, name in sorted(pod_names(capture).items(), key=lambda kv: kv[1])}


def short_name(pod: str) -> str:
    """Return a pod's short name (a lab host's, a tracer endpoint's): its name without the
    ReplicaSet and pod hashes (``productpage-v1`` for ``productpage-v1-7c548b785b-mhjm6``)."""
    parts = pod.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else pod


def demo_network(capture: Capture, prefix: str = "") -> Network:
    """Return the network of a capture with ``node/`` and ``ztunnel/`` folders.

    Everything comes from the capture: rules, routes, addresses, sysctls, iptables, the
    ipset, the tunnels (``ip -d link``), and which veth leads to which pod (the node's
    ``scope host`` routes, named by ``kubectl get pod``). ``prefix`` is put before every
    machine and pod name (the second node of a two-node network).
    """
    node = Machine(host_from_capture(capture, "node"), tunnels=_tunnels(capture, "node"))
    node.host.name = f"{prefix}node"
    node.rules = Ruleset(capture.text("node/iptables-save.txt"), f"{capture.name}/node/iptables-save.txt",
                         _ipsets(capture, "node/ipset-list.txt"))
    ztunnel = Machine(host_from_capture(capture, "ztunnel"), tunnels=_tunnels(capture, "ztunnel"))
    ztunnel.rules = Ruleset(capture.text("ztunnel/iptables-save.txt"), f"{capture.name}/ztunnel/iptables-save.txt")
    ztunnel.host.name = f"{prefix}ztunnel"
    ztunnel_ip = {a.local for a in ztunnel.host.devices["eth0"].addrs}
    net = Network()
    net.add(node)
    net.add(ztunnel)
    names = pod_names(capture)
    for route in node.host.fib.tables[ipv4.TABLES["main"]].routes:
        if route.length == 32 and route.nexthops and route.record.get("scope") == "host":
            dev = route.nexthops[0].dev
            if route.network in ztunnel_ip:
                net.veth((node.name, dev), (ztunnel.name, "eth0"))
            else:
                ip = ipv4.to_text(route.network)
                net.exit((node.name, dev), Exit("pod", prefix + short_name(names.get(ip, ip))))
    net.exit((node.name, "eth0"), Exit("world", WORLD))
    return net


def two_node_network(first: Capture, second: Capture) -> Network:
    """Return the networks of two node captures joined eth0 to eth0: the underlay (kind's
    docker network) reduced to one wire between the two nodes. The second node's machines and
    pods are named with :data:`SECOND` before them; nothing else is left outside."""
    net = demo_network(first)
    other = demo_network(second, SECOND)
    net.machines.update(other.machines)
    net.wires.update(other.wires)
    net.entries.update(other.entries)
    del net.entries[WORLD]
    net.veth(("node", "eth0"), (f"{SECOND}node", "eth0"))
    return net
