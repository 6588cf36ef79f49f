"""The live lab's build plan, derived from a capture: which namespaces, which devices, and the
exact commands that apply the capture's rules, routes, ipsets, iptables and sysctls.

Nothing here is a second copy of the configuration: ``ip rule`` lines become ``ip rule add``,
route lines become ``ip route add``, ``iptables-save`` is fed to ``iptables-restore``, ``ipset
list`` becomes ``ipset restore`` input, and the sysctl file becomes ``sysctl -w``. What the
capture does not hold (how the app pods are wired, who stands behind ``eth0``) follows the
capture's own evidence: pods are wired like the ztunnel pod, the peer owns the gateway, the
other nodes and the other nodes' pods named by ``kubectl``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ambientlab.core.capture import Capture
from ambientlab.core.parse.ip_route import parse_ip_route_records
from ambientlab.core.parse.ip_rule import parse_ip_rule_records
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.demo import kubectl_pods, pod_names, short_name
from ambientlab.core.trace.inpod import pod_folders
from ambientlab.core.trace.kubeproxy import DETAILS, DETAILS_VETH, KUBE_PROXY_RULES
from ambientlab.core.trace.scenarios import REMOTE_REVIEWS_V1
from ambientlab.live.netns import KERNEL_DEFAULTS

TUNNELS = ("geneve", "vxlan", "veth")
SECOND = "worker-"  # the host names of a two-node lab's second node start with this
BRIDGE = "br0"
DEFAULT_RULES = {0: "local", 32766: "main", 32767: "default"}
PEER = "peer"


if TYPE_CHECKING:
    import pandas as pd


class PlanError(ValueError):
    """The capture lacks something the lab needs, or holds something it cannot apply."""


@dataclass(frozen=True)
class Step:
    """One command run in one lab host; ``why`` names the capture line it applies."""

    host: str
    argv: tuple[str, ...]
    why: str
    stdin: str | None = None

    @property
    def source(self) -> str:
        """Return the capture file this step applies (the start of ``why``)."""
        found = re.match(r"[\w-]+/[\w.-]+\.txt", self.why)
        return found.group(0) if found else self.why


@dataclass
class Plan:
    """Hosts (short names, in creation order, with sysctls pinned at creation) and steps."""

    hosts: dict[str, dict[str, str]] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    pods: dict[str, str] = field(default_factory=dict)  # host name -> pod IP
    remote: dict[str, str] = field(default_factory=dict)  # address on the peer -> what it stands for
    tunnel: str = "geneve"
    ztunnel_ip: str = ""
    ztunnels: dict[str, str] = field(default_factory=dict)  # ztunnel host name -> its IP
    inpod: list[str] = field(default_factory=list)  # pods whose own namespace holds the redirection (in-pod)

    def summary(self) -> pd.DataFrame:
        """Return how many commands the plan runs, counted by namespace (node, ztunnel pod, app
        pods, peer: in that order), by the capture file they apply and by command."""
        import pandas as pd

        kinds = {"node": "node", "ztunnel": "ztunnel pod", "peer": "peer"}
        order = pd.CategoricalDtype(["node", "ztunnel pod", "app pods", "peer"], ordered=True)
        steps = pd.DataFrame({"namespace": pd.Series([kinds.get(s.host, "app pods") for s in self.steps], dtype=order),
                              "from the file": [s.source for s in self.steps],
                              "command": [" ".join(s.argv[:3 if s.argv[0] == "ip" else 1]) for s in self.steps]})
        return steps.groupby(["namespace", "from the file", "command"], observed=True).size().rename("commands").to_frame()

    def addresses(self, host: str) -> list[str]:
        """Return the IPv4 addresses the plan puts on ``host``'s devices, in numeric order."""
        found = {s.argv[3].split("/")[0] for s in self.steps if s.host == host and s.argv[:3] == ("ip", "addr", "add")}
        return sorted(found, key=lambda a: tuple(map(int, a.split("."))))

    def add(self, host: str, why: str, *argv: str, stdin: str | None = None) -> None:
        """Append one step."""
        self.steps.append(Step(host, tuple(argv), why, stdin))


def _records(capture: Capture, path: str, kind: str) -> list[dict[str, Any]]:
    if capture.entry(path)["parser"] != kind:
        raise PlanError(f"{capture.name}/{path}: the plan reads it as {kind} output, its manifest says {capture.entry(path)['parser']}")
    return capture.records(path)


def _tunnel_links(capture: Capture, folder: str) -> dict[str, dict[str, Any]]:
    """Return {device: ip -d link record} of the tunnel devices recorded in ``folder``."""
    out = {}
    for path in capture.files.index:
        if path.startswith(f"{folder}/ip-d-link-"):
            for rec in _records(capture, path, "ip-link"):
                out[rec["ifname"]] = rec
    return out


def _route_files(capture: Capture, folder: str) -> list[tuple[str, str]]:
    """Return [(path, table name)] of the ``ip route show table T`` files of ``folder``."""
    out = []
    for path in capture.files.index:
        if re.fullmatch(rf"{folder}/ip-route-table-[^/]+\.txt", path):
            table = re.search(r"\btable (\S+)$", capture.entry(path)["command"])
            if table:
                out.append((path, table.group(1)))
    return out


def _network(address: str, length: int) -> str:
    """Return ``a.b.c.d/len`` of the network holding ``address``."""
    return f"{ipv4.to_text(ipv4.to_int(address) & ipv4.MASKS[length])}/{length}"


def _address_steps(plan: Plan, host: str, device: dict[str, Any], why: str) -> None:
    for addr in device.get("addr_info", []):
        if addr.get("family") != "inet":
            continue
        argv = ["ip", "addr", "add", f"{addr['local']}/{addr['prefixlen']}"]
        if "broadcast" in addr:
            argv += ["brd", addr["broadcast"]]
        if addr.get("scope", "global") != "global":
            argv += ["scope", addr["scope"]]
        plan.add(host, why, *argv, "dev", device["ifname"])


def _link_args(device: dict[str, Any]) -> list[str]:
    args = ["index", str(device["ifindex"]), "address", device["address"], "mtu", str(device["mtu"])]
    return args + ["txqueuelen", str(device.get("txqlen", 0))]


def _tunnel_step(plan: Plan, host: str, rec: dict[str, Any], kind: str, why: str) -> None:
    data = rec["linkinfo"]["info_data"]
    argv = ["ip", "link", "add", rec["ifname"], *_link_args(rec), "type", kind, "id", str(data["id"]),
            "remote", data["remote"], "dstport", str(data.get("port", 6081))]
    plan.add(host, why, *argv)


def _routes(plan: Plan, capture: Capture, host: str, folder: str) -> None:
    """Add the non-kernel routes of every recorded table (routes without a gateway first, so
    that gateways resolve), and delete kernel routes the capture does not show."""
    for path, table in _route_files(capture, folder):
        if table == "local":
            continue  # the kernel writes the local table itself; `lab status` compares it
        recs, lines = parse_ip_route_records(capture.text(path), f"{capture.name}/{path}")
        text = capture.text(path).splitlines()
        adds = []
        for rec, line in zip(recs, lines, strict=True):
            words = text[line - 1].split()
            if rec.get("protocol") == "kernel":
                continue  # made by the address; checked by `lab status`
            if set(words) & {"linkdown", "dead", "offload", "trap", "rt_offload", "rt_trap"}:
                raise PlanError(f"{capture.name}/{path}:{line}: state flag in {text[line - 1]!r}")
            adds.append((bool(rec.get("gateway")), line, words))
        for _, line, words in sorted(adds, key=lambda a: (a[0], a[1])):
            plan.add(host, f"{path}:{line}", "ip", "route", "add", "table", table, *words)


def _stray_kernel_routes(plan: Plan, capture: Capture, host: str, folder: str, devices: list[dict[str, Any]]) -> None:
    """Delete the connected routes the kernel adds for an address when the recorded main table
    has none (the CNI ptp plugin removes the pod's /24 route)."""
    main = [p for p, t in _route_files(capture, folder) if t == "main"]
    if not main:
        return
    recorded = {r["dst"] for r in parse_ip_route_records(capture.text(main[0]), main[0])[0]
                if r.get("protocol") == "kernel"}
    for dev in devices:
        for addr in dev.get("addr_info", []):
            if addr.get("family") != "inet" or addr.get("scope", "global") == "host":
                continue
            dst = _network(addr["local"], int(addr["prefixlen"]))
            if dst not in recorded and int(addr["prefixlen"]) < 32:
                plan.add(host, f"{main[0]} has no `{dst} … proto kernel` route", "ip", "route", "del", dst,
                         "dev", dev["ifname"], "proto", "kernel")


def _rules(plan: Plan, capture: Capture, host: str, folder: str) -> None:
    path = f"{folder}/ip-rule.txt"
    text = capture.text(path).splitlines()
    recs, lines = parse_ip_rule_records(capture.text(path), f"{capture.name}/{path}")
    present = set()
    for rec, line in zip(recs, lines, strict=True):
        prio = int(rec["priority"])
        if DEFAULT_RULES.get(prio) == rec.get("table") and rec.get("src") == "all" and len(rec) == 3:
            present.add(prio)
            continue
        words = text[line - 1].split(None, 1)[1].split()
        if set(words) & {"[detached]", "[unresolved]", "unresolved"}:
            raise PlanError(f"{capture.name}/{path}:{line}: cannot apply {text[line - 1]!r}")
        plan.add(host, f"{path}:{line}", "ip", "rule", "add", "priority", str(prio), *words)
    for prio in sorted(set(DEFAULT_RULES) - present):
        plan.add(host, f"{path} has no rule {prio}", "ip", "rule", "del", "priority", str(prio))


def _ipsets(plan: Plan, capture: Capture, host: str, folder: str) -> None:
    path = f"{folder}/ipset-list.txt"
    if path not in capture.files.index:
        return
    parsed = capture.parse(path)
    lines = []
    options = ("family", "hashsize", "maxelem", "netmask", "timeout", "counters", "comment", "skbinfo", "forceadd",
               "bucketsize")
    for rec in parsed.sets.to_dict("records"):
        words = [f"create {rec['name']} {rec['type']}"]
        for key in options:
            value = rec.get(key)
            if value is None or value != value or value is False:
                continue
            words.append(key if value is True else f"{key} {value}")
        lines.append(" ".join(words))
    for rec in parsed.members.to_dict("records"):
        lines.append(f"add {rec['set']} {rec['elem']}")
    plan.add(host, path, "ipset", "restore", stdin="\n".join(lines) + "\n")


def _sysctls(plan: Plan, capture: Capture, host: str, folder: str) -> None:
    path = f"{folder}/sysctl-net-ipv4.txt"
    if path not in capture.files.index:
        return
    frame = capture.parse(path)
    pairs = [f"{k}={v}" for k, v in zip(frame["key"], frame["value"], strict=True)]
    plan.add(host, path, "sysctl", "-qw", *pairs)


def _iptables(plan: Plan, capture: Capture, host: str, folder: str, path: str = "") -> None:
    path = path or f"{folder}/iptables-save.txt"
    if path not in capture.files.index:
        raise PlanError(f"{capture.name}: {path} is missing (the lab needs the whole rule set)")
    plan.add(host, path, "iptables-restore", stdin=capture.text(path))


def _require(capture: Capture, *paths: str) -> None:
    missing = [p for p in paths if p not in capture.files.index]
    if missing:
        raise PlanError(f"capture {capture.name} lacks {', '.join(missing)}: the live lab needs the node's and "
                        "ztunnel's ip addr, ip rule, route tables and iptables-save")


def build_plan(capture: Capture, tunnel: str, full: Callable[[str], str], prefix: str = "",
               uplink_end: str = "eth0", bridge: str | None = None, kube_proxy: bool = False) -> Plan:
    """Return the plan that rebuilds ``capture``'s node, pods, ztunnel and peer in namespaces.

    ``tunnel`` is ``geneve``, ``vxlan`` (same VNI and UDP port) or ``veth`` (one veth pair per
    tunnel pair); ``full`` maps a host name to its real namespace name; ``prefix`` is put before
    the names of the node, ztunnel and pod hosts (not the peer's): the second node of a
    two-node lab (see :func:`build_cluster_plan`). ``uplink_end`` names the peer's end of the
    node's uplink; with ``bridge``, that end joins the peer's bridge, which holds the peer's
    addresses and routes. With ``kube_proxy`` the node's rules are the capture's reconstruction
    with kube-proxy's chains (:data:`~ambientlab.core.trace.kubeproxy.KUBE_PROXY_RULES`), and the
    lab gets what the tracer's kube-proxy walks add: details-v1 outside the mesh on this node, and
    reviews-v1 of ``ambient-worker`` (10.244.1.23) on the peer (see :func:`_kube_proxy_extras`).
    """
    if tunnel not in TUNNELS:
        raise PlanError(f"tunnel {tunnel!r} not in {TUNNELS}")
    # A 2022 capture has a ztunnel/ folder (the pod the node steers traffic to); an in-pod capture
    # has pod folders instead, each with the rules of its own namespace.
    folders = pod_folders(capture)
    has_zt = "ztunnel/ip-addr.txt" in capture.files.index or not folders
    template = "ztunnel" if has_zt else folders[0]  # how the CNI wired a pod: the app pods are wired alike
    _require(capture, "node/ip-addr.txt", "node/ip-rule.txt", "node/iptables-save.txt",
             f"{template}/ip-addr.txt", f"{template}/ip-rule.txt", f"{template}/iptables-save.txt")
    plan = Plan(tunnel=tunnel)
    node, ztunnel = f"{prefix}node", f"{prefix}ztunnel"
    node_devs = _records(capture, "node/ip-addr.txt", "ip-addr")
    zt_devs = _records(capture, f"{template}/ip-addr.txt", "ip-addr")
    zt_eth0 = next((d for d in zt_devs if d["ifname"] == "eth0"), None)
    if zt_eth0 is None or not zt_eth0.get("addr_info"):
        raise PlanError(f"{capture.name}/{template}/ip-addr.txt: no eth0 address")
    zt_addr = zt_eth0["addr_info"][0]
    if has_zt:
        plan.ztunnel_ip = zt_addr["local"]
        plan.ztunnels[ztunnel] = zt_addr["local"]
    else:
        plan.inpod = [prefix + f for f in folders]
    node_tunnels, zt_tunnels = _tunnel_links(capture, "node"), _tunnel_links(capture, "ztunnel")
    main = [p for p, t in _route_files(capture, "node") if t == "main"]
    if not main:
        raise PlanError(f"capture {capture.name} lacks node/ip-route-table-main.txt")
    main_recs = parse_ip_route_records(capture.text(main[0]), main[0])[0]
    host_routes = {r["dev"]: r["dst"] for r in main_recs if r.get("scope") == "host" and "gateway" not in r}
    names = pod_names(capture)

    plan.hosts[node] = {**KERNEL_DEFAULTS, "net.ipv4.ip_forward": "1"}
    if has_zt:
        plan.hosts[ztunnel] = {**KERNEL_DEFAULTS, "net.ipv4.ip_forward": "0"}
    plan.hosts[PEER] = {**KERNEL_DEFAULTS, "net.ipv4.ip_forward": "0"}
    default = next((r for r in main_recs if r["dst"] == "default"), None)
    if default is None:
        raise PlanError(f"{capture.name}/{main[0]}: no default route (who stands behind it?)")
    uplink = default["dev"]
    own_eth0 = {f: next(d for d in _records(capture, f"{f}/ip-addr.txt", "ip-addr") if d["ifname"] == "eth0")
                for f in folders if f"{f}/ip-addr.txt" in capture.files.index}
    for dev in node_devs:
        name, why = dev["ifname"], f"node/ip-addr.txt: {dev['ifname']}"
        if name == "lo":
            continue
        if name in node_tunnels:
            continue  # after the veths: the tunnels' remote is a pod address
        if "link_netnsid" not in dev:
            raise PlanError(f"{capture.name}/node/ip-addr.txt: cannot tell what {name} is (not a veth, no ip -d link)")
        if name == uplink:
            peer, peer_dev = PEER, uplink_end
        elif has_zt and host_routes.get(name) == zt_addr["local"]:
            peer, peer_dev = ztunnel, zt_eth0["ifname"]
        elif name in host_routes:
            ip = host_routes[name]
            peer, peer_dev = prefix + short_name(names.get(ip, f"pod-{ip}")), "eth0"
            plan.pods[peer] = ip
            plan.hosts[peer] = {**KERNEL_DEFAULTS, "net.ipv4.ip_forward": "0"}
        else:
            raise PlanError(f"{capture.name}: node device {name} is a veth but no `scope host` route or default "
                            "route says where it leads")
        recorded = zt_eth0 if has_zt and peer == ztunnel else own_eth0.get(peer.removeprefix(prefix))
        peer_index = str(recorded["ifindex"] if recorded else dev.get("link_index", 2))
        peer_args = ["index", peer_index] + (["address", recorded["address"]] if recorded else [])
        plan.add(node, why, "ip", "link", "add", name, *_link_args(dev), "type", "veth", "peer", "name", peer_dev,
                 *peer_args, "netns", full(peer))
        _address_steps(plan, node, dev, why)
        plan.add(node, why, "ip", "link", "set", name, "up")
        if peer == PEER and bridge:
            plan.add(PEER, f"{why}: on the bridge", "ip", "link", "set", peer_dev, "master", bridge)
        plan.add(peer, why, "ip", "link", "set", peer_dev, "up")
    if kube_proxy:
        _kube_proxy_extras(plan, capture, node, full)
    # ztunnel (or a recorded pod): its eth0 address as recorded; the other pods are wired the same way (ptp)
    if has_zt:
        _address_steps(plan, ztunnel, zt_eth0, "ztunnel/ip-addr.txt: eth0")
    for pod, ip in plan.pods.items():
        own = pod.removeprefix(prefix)
        if own in own_eth0:
            _address_steps(plan, pod, own_eth0[own], f"{own}/ip-addr.txt: eth0")
            continue
        pod_eth0 = {"ifname": "eth0", "addr_info": [{**zt_addr, "local": ip, "label": "eth0"}]}
        _address_steps(plan, pod, pod_eth0, f"{template}/ip-addr.txt: eth0, wired alike for {pod} ({ip})")
    # tunnels (or their stand-ins), paired by VNI
    pairs = []
    for name, rec in node_tunnels.items():
        vni = rec["linkinfo"]["info_data"]["id"]
        mate = next((n for n, r in zt_tunnels.items() if r["linkinfo"]["info_data"]["id"] == vni), None)
        if mate is None:
            raise PlanError(f"{capture.name}: node tunnel {name} (VNI {vni}) has no ztunnel end")
        pairs.append((name, mate))
    for name, mate in pairs:
        node_rec, zt_rec = node_tunnels[name], zt_tunnels[mate]
        if tunnel == "veth":
            plan.add(node, f"node/{name} (veth stand-in)", "ip", "link", "add", name, *_link_args(node_rec), "type",
                     "veth", "peer", "name", mate, *_link_args(zt_rec), "netns", full(ztunnel))
        else:
            _tunnel_step(plan, node, node_rec, tunnel, f"node/ip-d-link-{name}.txt")
            _tunnel_step(plan, ztunnel, zt_rec, tunnel, f"ztunnel/ip-d-link-{mate}.txt")
        for host, folder, dev_name, devs in ((node, "node", name, node_devs), (ztunnel, "ztunnel", mate, zt_devs)):
            dev = next((d for d in devs if d["ifname"] == dev_name), {"ifname": dev_name})
            _address_steps(plan, host, dev, f"{folder}/ip-addr.txt: {dev_name}")
            plan.add(host, f"{folder}/ip-addr.txt: {dev_name}", "ip", "link", "set", dev_name, "up")
    # the peer: kind's gateway, the other nodes, and the other nodes' pods
    uplink_addr = next(d for d in node_devs if d["ifname"] == uplink)["addr_info"][0]
    length = uplink_addr["prefixlen"]
    others = [(r["dst"], r["gateway"]) for r in main_recs if r.get("gateway") and r["dst"] != "default"]
    plan.remote[default["gateway"]] = "the default gateway"
    on = bridge or uplink_end  # the peer's device that holds its addresses
    plan.add(PEER, f"{main[0]}: default via {default['gateway']}", "ip", "addr", "add",
             f"{default['gateway']}/{length}", "dev", on)
    for cidr, gateway in others:
        plan.remote[gateway] = f"the node that owns {cidr}"
        plan.add(PEER, f"{main[0]}: {cidr} via {gateway}", "ip", "addr", "add", f"{gateway}/{length}", "dev", on)
    for path, name, ip in kubectl_pods(capture):
        if any(_network(ip, int(c.split("/")[1])) == c for c, _ in others):
            plan.remote[ip] = name
            plan.add(PEER, f"{path}: {name} {ip}", "ip", "addr", "add", f"{ip}/32", "dev", "lo")
    plan.add(PEER, f"{template}/ip-addr.txt: the pods' network, reached through the node's {uplink}", "ip", "route", "add",
             _network(zt_addr["local"], int(zt_addr["prefixlen"])), "via", uplink_addr["local"], "dev", on)
    # routes, rules, ipsets, iptables and sysctls, from the capture
    applied = [(node, "node", node_devs)] + ([(ztunnel, "ztunnel", zt_devs)] if has_zt else [])
    applied += [(prefix + f, f, _records(capture, f"{f}/ip-addr.txt", "ip-addr")) for f in folders
                if prefix + f in plan.pods]
    for host, folder, devs in applied:
        _stray_kernel_routes(plan, capture, host, folder, devs)
        _routes(plan, capture, host, folder)
        _rules(plan, capture, host, folder)
        _ipsets(plan, capture, host, folder)
        _iptables(plan, capture, host, folder, KUBE_PROXY_RULES if kube_proxy and folder == "node" else "")
        _sysctls(plan, capture, host, folder)
    if kube_proxy:
        pod = f"{ipv4.to_text(DETAILS)} dev {DETAILS_VETH} scope host"
        plan.add(node, f"{KUBE_PROXY_RULES}: details-v1's route (assumed)", "ip", "route", "add", *pod.split())
    for pod in plan.pods:
        if pod.removeprefix(prefix) in folders:
            continue
        _stray_kernel_routes(plan, capture, pod, template, [{"ifname": "eth0", "addr_info": [
            {**zt_addr, "local": plan.pods[pod]}]}])
        _routes_like(plan, capture, pod, template)
    return plan


def _kube_proxy_extras(plan: Plan, capture: Capture, node: str, full: Callable[[str], str]) -> None:
    """Add the hosts the kube-proxy walks need that the capture has no files for (both assumed,
    as its manifest says): details-v1, a pod outside the mesh on ``vethdetails`` (not in the
    ipset, not in table 100), and reviews-v1 of ``ambient-worker`` on the peer."""
    if KUBE_PROXY_RULES not in capture.files.index:
        raise PlanError(f"capture {capture.name} has no {KUBE_PROXY_RULES} (kube-proxy's chains)")
    why = f"{KUBE_PROXY_RULES}: details-v1 outside the mesh (assumed)"
    host_ip = next(a["local"] for d in _records(capture, "node/ip-addr.txt", "ip-addr") if d["ifname"] != "lo"
                   for a in d.get("addr_info", []) if a.get("prefixlen") == 32)
    plan.hosts["details-v1"] = {**KERNEL_DEFAULTS, "net.ipv4.ip_forward": "0"}
    plan.pods["details-v1"] = ipv4.to_text(DETAILS)
    plan.add(node, why, "ip", "link", "add", DETAILS_VETH, "type", "veth", "peer", "name", "eth0", "netns",
             full("details-v1"))
    plan.add(node, why, "ip", "addr", "add", f"{host_ip}/32", "dev", DETAILS_VETH)
    plan.add(node, why, "ip", "link", "set", DETAILS_VETH, "up")
    plan.add("details-v1", why, "ip", "link", "set", "eth0", "up")
    remote = ipv4.to_text(REMOTE_REVIEWS_V1)
    plan.remote[remote] = "reviews-v1 (on ambient-worker, Zhao's part 3)"
    plan.add(PEER, f"{KUBE_PROXY_RULES}: endpoint {remote}:9080 of the reviews service", "ip", "addr", "add",
             f"{remote}/32", "dev", "lo")


def _routes_like(plan: Plan, capture: Capture, pod: str, template: str) -> None:
    """Give an app pod the ``template`` pod's main-table routes (both are wired by the same CNI)."""
    before = len(plan.steps)
    _routes(plan, capture, pod, template)
    kept = [s for s in plan.steps[before:] if s.argv[4] == "main"]
    plan.steps[before:] = [Step(s.host, s.argv, f"{s.why}, wired alike for {pod}") for s in kept]



def build_cluster_plan(first: Capture, second: Capture, tunnel: str, full: Callable[[str], str]) -> Plan:
    """Return the plan of a two-node lab: ``first``'s node as :func:`build_plan` builds it, and
    ``second``'s node with host names starting with :data:`SECOND`, both uplinks joined by a
    bridge in the peer (kind's docker network). The peer keeps what neither node owns (the
    gateway, the control-plane node and its pods) and routes each node's pod network to it.
    """
    one = build_plan(first, tunnel, full, bridge=BRIDGE)
    two = build_plan(second, tunnel, full, SECOND, uplink_end="eth1", bridge=BRIDGE)
    owned = {step.argv[3].split("/")[0] for step in (*one.steps, *two.steps)
             if step.host != PEER and step.argv[:3] == ("ip", "addr", "add")}
    plan = Plan(hosts={**one.hosts, **two.hosts}, pods={**one.pods, **two.pods}, tunnel=tunnel,
                ztunnel_ip=one.ztunnel_ip, ztunnels={**one.ztunnels, **two.ztunnels})
    plan.remote = {ip: what for ip, what in {**one.remote, **two.remote}.items() if ip not in owned}
    why = "kind's docker network: one bridge for both nodes' eth0"
    plan.add(PEER, why, "ip", "link", "add", BRIDGE, "index", "10", "type", "bridge")
    plan.add(PEER, why, "ip", "link", "set", BRIDGE, "up")
    seen: set[tuple[str, ...]] = set()
    for step in (*one.steps, *two.steps):
        if step.host == PEER:
            if step.argv[:3] == ("ip", "addr", "add") and step.argv[3].split("/")[0] in owned:
                continue  # a node of the lab owns it
            if step.argv in seen:
                continue  # both nodes name the gateway, the control-plane node and its pods
            seen.add(step.argv)
        plan.steps.append(step)
    return plan
