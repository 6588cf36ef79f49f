"""Rebuild the 2022 ``ambient-worker2`` node and its ztunnel pod in network namespaces with
upstream's own commands, and record what the real tools print.

The files of the demo capture marked ``reconstructed`` are the output of
:func:`reconstruct_demo`; a kernel-checked test runs it again and compares. The commands follow
istio/istio 191fe680b52c1754ee72a06b3e0d3f9d116f2e82 (``cni/pkg/ambient/net.go``,
``iptables.go``; the ztunnel chart ``ambient.yaml`` for the pod side). Everything the 2022
sources do not show is an assumption, listed in :data:`ambientlab.live.nodes.ASSUMPTIONS`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ambientlab.live.netns import KERNEL_DEFAULTS, NamespaceSet
from ambientlab.live.nodes import (
    GATEWAY,
    WORKER2,
    NodeSpec,
)
from ambientlab.live.outputs import SYSCTL, clean_output, netnsid_names


def _mac(ip: str, side: int) -> str:
    """Return a synthetic, locally administered MAC derived from an IPv4 address."""
    octets = [int(o) for o in ip.split(".")]
    return "02:%02x:%02x:%02x:%02x:%02x" % (side, *octets)


def _node_iptables(ztunnel_veth: str, ztunnel_ip: str, host_ip: str) -> list[str]:
    """Return the iptables commands of CreateRulesOnNode, in upstream's order (S2/S3)."""
    cmds = [
        # kube-proxy's jump exists before istio-cni inserts its own at position 1.
        "iptables -t nat -N KUBE-SERVICES",
        'iptables -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    ]
    for table, chain in (("nat", "PREROUTING"), ("nat", "POSTROUTING"), ("mangle", "PREROUTING"),
                         ("mangle", "POSTROUTING"), ("mangle", "OUTPUT"), ("mangle", "INPUT"),
                         ("mangle", "FORWARD")):
        cmds += [f"iptables -t {table} -N ztunnel-{chain}", f"iptables -t {table} -I {chain} -j ztunnel-{chain}"]
    pre, fwd, inp = "-t mangle -A ztunnel-PREROUTING", "-t mangle -A ztunnel-FORWARD", "-t mangle -A ztunnel-INPUT"
    rules = [
        f"{pre} -i istioin -j MARK --set-mark 0x200/0x200",
        f"{pre} -i istioin -j RETURN",
        f"{pre} -i istioout -j MARK --set-mark 0x200/0x200",
        f"{pre} -i istioout -j RETURN",
        f"{fwd} -m mark --mark 0x220/0x220 -j CONNMARK --save-mark --nfmask 0x220 --ctmask 0x220",
        f"{inp} -m mark --mark 0x220/0x220 -j CONNMARK --save-mark --nfmask 0x220 --ctmask 0x220",
        f"{fwd} -m mark --mark 0x210/0x210 -j CONNMARK --save-mark --nfmask 0x210 --ctmask 0x210",
        f"{inp} -m mark --mark 0x210/0x210 -j CONNMARK --save-mark --nfmask 0x210 --ctmask 0x210",
        f"-t mangle -A ztunnel-OUTPUT --source {host_ip} -j MARK --set-mark 0x220",
        "-t nat -A ztunnel-PREROUTING -m mark --mark 0x100/0x100 -j ACCEPT",
        "-t nat -A ztunnel-POSTROUTING -m mark --mark 0x100/0x100 -j ACCEPT",
        f"{pre} -p udp -m udp --dport 6081 -j RETURN",
        f"{pre} -m connmark --mark 0x220/0x220 -j MARK --set-mark 0x200/0x200",
        f"{pre} -m mark --mark 0x200/0x200 -j RETURN",
        f"{pre} ! -i {ztunnel_veth} -m connmark --mark 0x210/0x210 -j MARK --set-mark 0x040/0x040",
        f"{pre} -m mark --mark 0x040/0x040 -j RETURN",
        f"{pre} -i {ztunnel_veth} ! --source {ztunnel_ip} -j MARK --set-mark 0x210/0x210",
        f"{pre} -m mark --mark 0x200/0x200 -j RETURN",
        f"{pre} -i {ztunnel_veth} -j MARK --set-mark 0x220/0x220",
        f"{pre} -p udp -j MARK --set-mark 0x220/0x220",
        f"{pre} -m mark --mark 0x200/0x200 -j RETURN",
        f"{pre} -p tcp -m set --match-set ztunnel-pods-ips src -j MARK --set-mark 0x100/0x100",
    ]
    return cmds + [f"iptables {r}" for r in rules]


def _ztunnel_iptables(pod: str, ztunnel_ip: str) -> list[str]:
    """Return the iptables commands of the ztunnel init script (S7): rules appended, then a LOG
    rule inserted at the top of 14 built-in chains."""
    rules = [
        "-t mangle -A PREROUTING -p tcp -i pistioin --dport 15008 -j TPROXY --tproxy-mark 0x400/0xfff --on-port 15008 --on-ip 127.0.0.1",
        "-t mangle -A PREROUTING -p tcp -i pistioout -j TPROXY --tproxy-mark 0x400/0xfff --on-port 15001 --on-ip 127.0.0.1",
        "-t mangle -A PREROUTING -p tcp -i pistioin -j TPROXY --tproxy-mark 0x400/0xfff --on-port 15006 --on-ip 127.0.0.1",
        f"-t mangle -A PREROUTING -p tcp -i eth0 ! --dst {ztunnel_ip} -j MARK --set-mark 0x4d3/0xfff",
        "-t nat -A OUTPUT -p tcp --dport 15088 -j REDIRECT --to-port 15008",
    ]
    logs = [("mangle", "PREROUTING", "mangle pre"), ("mangle", "INPUT", "mangle inp"),
            ("mangle", "FORWARD", "mangle fw"), ("mangle", "OUTPUT", "mangle out"),
            ("mangle", "POSTROUTING", "mangle post"), ("nat", "PREROUTING", "nat pre"),
            ("nat", "INPUT", "nat inp"), ("nat", "OUTPUT", "nat out"), ("nat", "POSTROUTING", "nat post"),
            ("raw", "PREROUTING", "raw pre"), ("raw", "OUTPUT", "raw out"), ("filter", "INPUT", "filt inp"),
            ("filter", "FORWARD", "filt fw"), ("filter", "OUTPUT", "filt out")]
    return [f"iptables {r}" for r in rules] + [
        f'iptables -t {t} -I {c} -j LOG --log-prefix "{p} [{pod}] "' for t, c, p in logs
    ]


def _geneve_or_vxlan(ns: NamespaceSet, host: str, spec: NodeSpec, name: str, remote: str) -> None:
    index, mac, vni, qlen = spec.tunnels[name]
    common = ["ip", "link", "add", name, "index", str(index), "address", mac, "mtu", "1500", "txqueuelen", str(qlen)]
    made = subprocess.run(["ip", "netns", "exec", ns.full(host), *common, "type", "geneve", "id", str(vni),
                           "remote", remote], capture_output=True, text=True)
    if made.returncode != 0:  # no geneve in this kernel: vxlan on the same UDP port routes the same way
        ns.run(host, *common, "type", "vxlan", "id", str(vni), "remote", remote, "dstport", "6081")


def wire(ns: NamespaceSet, spec: NodeSpec = WORKER2) -> None:
    """Build node ``node``, one namespace per pod (named by its host veth, the ztunnel pod's
    too) and ``world`` in ``ns``, wired as kindnet and the CNI ptp plugin wire them, with no
    ambient configuration yet."""
    # Every IPv4 sysctl routing reads is pinned, so that results do not depend on this machine
    # (a new namespace copies the host's conf/all and conf/default values).
    pinned = KERNEL_DEFAULTS
    host_ip, cidr, ztunnel = spec.host_ip, spec.pod_cidr, spec.ztunnel
    ns.add("node", {**pinned, "net.ipv4.ip_forward": "1"})
    ns.add("world")
    ns.run("node", "ip", "link", "add", "eth0", "index", "2", "address", _mac(spec.node_eth0, 1), "type", "veth",
           "peer", "name", "eth0", "index", str(spec.uplink_peer_index), "address", _mac(GATEWAY, 1),
           "netns", ns.full("world"))
    ns.script("node", [f"ip addr add {spec.node_eth0}/16 brd + dev eth0", "ip link set eth0 up"])
    ns.script("world", [f"ip addr add {GATEWAY}/16 dev eth0", "ip link set eth0 up"])
    ns.script("node", [f"ip route add default via {GATEWAY} dev eth0"]
              + [f"ip route add {other} via {gw} dev eth0" for other, gw in spec.other_nodes.items()])
    for pod in (*spec.pods, ztunnel):
        short = pod.veth
        ns.add(short, {**pinned, "net.ipv4.ip_forward": "0"})
        ns.run("node", "ip", "link", "add", pod.veth, "index", str(pod.index), "address", _mac(pod.ip, 1),
               "type", "veth", "peer", "name", "eth0", "index", "2", "address", _mac(pod.ip, 2),
               "netns", ns.full(short))
        ns.script("node", [f"ip addr add {host_ip}/32 dev {pod.veth}", f"ip link set {pod.veth} up",
                           f"ip route add {pod.ip} dev {pod.veth} scope host"])
        # CNI ptp plugin: /24 address, its connected route replaced by one via the gateway
        ns.script(short, [f"ip addr add {pod.ip}/24 brd + dev eth0", "ip link set eth0 up",
                          f"ip route del {cidr} dev eth0",
                          f"ip route add {host_ip} dev eth0 scope link",
                          f"ip route add {cidr} via {host_ip} dev eth0",
                          f"ip route add default via {host_ip} dev eth0"])


def build(ns: NamespaceSet, spec: NodeSpec = WORKER2) -> None:
    """Build node ``node``, one namespace per pod (named by its host veth), the ztunnel pod
    (named by its veth) and ``world`` in ``ns``, with upstream's commands for ``spec``."""
    wire(ns, spec)
    host_ip, zt, ztunnel = spec.host_ip, spec.ztunnel.veth, spec.ztunnel
    # node side of CreateRulesOnNode: ipset, tunnels, routes, rules, iptables (S2, S4)
    ns.script("node", ["ipset create ztunnel-pods-ips hash:ip"]
              + [f"ipset add ztunnel-pods-ips {p.ip}" for p in spec.pods])
    for name in ("istioin", "istioout"):
        _geneve_or_vxlan(ns, "node", spec, name, ztunnel.ip)
    ns.script("node", [
        "ip addr add 192.168.126.1/30 brd + dev istioin", "ip link set istioin up",
        "ip addr add 192.168.127.1/30 brd + dev istioout", "ip link set istioout up",
        f"ip route add table 101 {ztunnel.ip} dev {zt} scope link",
        "ip route add table 101 0.0.0.0/0 via 192.168.127.2 dev istioout",
        f"ip route add table 102 {ztunnel.ip} dev {zt} scope link",
        f"ip route add table 102 0.0.0.0/0 via {ztunnel.ip} dev {zt} onlink",
        f"ip route add table 100 {ztunnel.ip} dev {zt} scope link",
        "ip rule add priority 100 fwmark 0x200/0x200 goto 32766",
        "ip rule add priority 101 fwmark 0x100/0x100 lookup 101",
        "ip rule add priority 102 fwmark 0x040/0x040 lookup 102",
        "ip rule add priority 103 table 100",
    ] + [f"ip route add table 100 {p.ip}/32 via 192.168.126.2 dev istioin src {host_ip}" for p in spec.pods])
    ns.script("node", _node_iptables(zt, ztunnel.ip, host_ip))
    # sysctls of CreateRulesOnNode / AddPodToMesh (S2, S6): rp_filter off, accept_local on the
    # ztunnel veth and the tunnels.
    ns.script("node", [f"sysctl -qw net.ipv4.conf.{dev}.rp_filter=0"
                       for dev in (zt, "istioin", "istioout", *(p.veth for p in spec.pods))]
              + [f"sysctl -qw net.ipv4.conf.{dev}.accept_local=1" for dev in (zt, "istioin", "istioout")])
    # ztunnel side (S7)
    for name in ("pistioin", "pistioout"):
        _geneve_or_vxlan(ns, zt, spec, name, host_ip)
    ns.script(zt, [
        "ip addr add 192.168.126.2/30 dev pistioin", "ip link set pistioin up",
        "ip addr add 192.168.127.2/30 dev pistioout", "ip link set pistioout up",
        "ip rule add priority 20000 fwmark 0x400/0xfff lookup 100",
        "ip rule add priority 20001 fwmark 0x401/0xfff lookup 101",
        "ip rule add priority 20002 fwmark 0x402/0xfff lookup 102",
        "ip rule add priority 20003 fwmark 0x4d3/0xfff lookup 100",
        "ip route add local 0.0.0.0/0 dev lo table 100",
        f"ip route add table 101 {host_ip} dev eth0 scope link",
        "ip route add table 101 0.0.0.0/0 via 192.168.127.1 dev pistioout",
        f"ip route add table 102 {host_ip} dev eth0 scope link",
        "ip route add table 102 0.0.0.0/0 via 192.168.126.1 dev pistioin",
    ] + _ztunnel_iptables(ztunnel.name, ztunnel.ip)
      + [f"sysctl -qw net.ipv4.conf.{dev}.rp_filter=0" for dev in ("pistioin", "pistioout", "all", "default", "eth0")])


IP_ROUTE_TABLES = ("100", "101", "102")


def outputs(spec: NodeSpec = WORKER2, *, complete: bool = False) -> dict[str, dict[str, list[str]]]:
    """Return {namespace: {capture path: command}} of what a reconstruction records for ``spec``.

    For the demo node (``complete`` False) the files that were recorded in 2022 are left out;
    a node with no recording (``complete`` True) gets every file the lab and the tracer read.
    """
    node = {
        "node/sysctl-net-ipv4.txt": SYSCTL,
        "node/ip-route-table-main.txt": ["ip", "route", "show", "table", "main"],
        "node/ip-route-table-local.txt": ["ip", "route", "show", "table", "local"],
        "node/ip-addr.txt": ["ip", "addr"],
        "node/iptables-save.txt": ["iptables-save"],
    }
    if complete:
        node |= {"node/ip-rule.txt": ["ip", "rule"], "node/ipset-list.txt": ["ipset", "list"]}
        node |= {f"node/ip-route-table-{t}.txt": ["ip", "route", "show", "table", t] for t in IP_ROUTE_TABLES}
    ztunnel = {
        "ztunnel/ip-rule.txt": ["ip", "rule"],
        **{f"ztunnel/ip-route-table-{t}.txt": ["ip", "route", "show", "table", t] for t in IP_ROUTE_TABLES},
        "ztunnel/ip-route-table-main.txt": ["ip", "route", "show", "table", "main"],
        "ztunnel/ip-route-table-local.txt": ["ip", "route", "show", "table", "local"],
        "ztunnel/ip-addr.txt": ["ip", "addr"],
        "ztunnel/iptables-save.txt": ["iptables-save"],
        "ztunnel/sysctl-net-ipv4.txt": SYSCTL,
    }
    return {"node": node, spec.ztunnel.veth: ztunnel}


OUTPUTS = outputs()
# Outputs that must equal the recorded files of the demo capture (a check on the reconstruction).
RECORDED_CHECKS = {
    "node": {
        "node/ip-rule.txt": ["ip", "rule"],
        "node/ip-route-table-100.txt": ["ip", "route", "show", "table", "100"],
        "node/ip-route-table-101.txt": ["ip", "route", "show", "table", "101"],
        "node/ip-route-table-102.txt": ["ip", "route", "show", "table", "102"],
    },
}


def reconstruct_node(spec: NodeSpec = WORKER2, prefix: str | None = None) -> dict[str, str]:
    """Build ``spec``'s node in namespaces and return {capture path: text the tools printed}.

    For the demo node the result also holds the outputs listed in :data:`RECORDED_CHECKS`,
    which callers compare with the recorded files.
    """
    out: dict[str, str] = {}
    wanted = outputs(spec, complete=spec is not WORKER2)
    checks = RECORDED_CHECKS if spec is WORKER2 else {}
    with NamespaceSet(prefix) as ns:
        build(ns, spec)
        for host, files in (*wanted.items(), *checks.items()):
            for path, argv in files.items():
                text = clean_output(ns.run(host, *argv))
                if argv[:2] == ["ip", "addr"]:
                    text = netnsid_names(ns, host, text)
                out[path] = text
    return out


def reconstruct_demo(prefix: str | None = None) -> dict[str, str]:
    """Return :func:`reconstruct_node` of the demo node (ambient-worker2)."""
    return reconstruct_node(WORKER2, prefix)


TUNNEL_FILES = {"istioin": "node/ip-d-link-istioin.txt", "istioout": "node/ip-d-link-istioout.txt",
                "pistioin": "ztunnel/ip-d-link-pistioin.txt", "pistioout": "ztunnel/ip-d-link-pistioout.txt"}


def tunnel_link_texts(spec: NodeSpec, demo: dict[str, str]) -> dict[str, str]:
    """Return {capture path: ``ip -d link show DEV`` text} of ``spec``'s four geneve devices,
    written from the demo node's recorded files (``demo``: {path: text}) with ``spec``'s index,
    MAC and remote (the ztunnel's IP on the node side, the HostIP in the pod, as S2/S7 create
    them). The kernel here may have no geneve, so these are not printed by a live device.
    """
    out = {}
    for dev, path in TUNNEL_FILES.items():
        index, mac, _, _ = spec.tunnels[dev]
        remote = spec.ztunnel.ip if path.startswith("node/") else spec.host_ip
        text = re.sub(r"^\d+:", f"{index}:", demo[path], count=1)
        text = re.sub(r"link/ether \S+", f"link/ether {mac}", text, count=1)
        out[path] = re.sub(r"\bremote \S+", f"remote {remote}", text, count=1)
    return out


def write_texts(root: Path, texts: dict[str, str]) -> None:
    """Write reconstructed ``texts`` ({path: text}) under ``root``. An ``ipset list`` whose
    members are those of the file already there is not rewritten: its header holds a random
    hash seed and its member order follows the hash, so a fresh print differs every time."""
    for path, text in texts.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.endswith("ipset-list.txt") and target.is_file():
            def members(t: str) -> list[str]:
                return sorted(t.split("Members:\n", 1)[-1].split())

            if members(target.read_text()) == members(text):
                continue
        target.write_text(text)


def write_reconstruction(root: Path, spec: NodeSpec = WORKER2, demo: dict[str, str] | None = None) -> list[str]:
    """Write the reconstructed files of ``spec`` into capture folder ``root``; return their paths.

    A node other than the demo node also gets its tunnel files, written from ``demo`` (the
    demo capture's recorded ``ip -d link`` texts) by :func:`tunnel_link_texts`.
    """
    texts = reconstruct_node(spec)
    written = [p for g in outputs(spec, complete=spec is not WORKER2).values() for p in g]
    if spec is not WORKER2:
        if demo is None:
            raise ValueError("the tunnel files of another node are written from the demo node's recorded ones")
        texts |= tunnel_link_texts(spec, demo)
        written += list(TUNNEL_FILES.values())
    write_texts(root, {path: texts[path] for path in written})
    return written
