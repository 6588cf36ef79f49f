"""The demo node as Istio 1.22's in-pod redirection would set it up: the same pods and wiring as
``kind-2022-ambient-worker2``, with the rules inside each ambient pod's network namespace and
only the kubelet-probe SNAT rule on the node. Built in network namespaces with upstream's
rules; what the tools print is the capture ``inpod-1.22-ambient-worker2``.

Sources (istio/istio tag 1.22.0 = ``aaf597fbfae607adf4bb4e77538a7ea98995328a``):
``cni/pkg/iptables/testdata/default.golden`` (the pod's rules, without DNS capture, which
istio.io's "Ztunnel traffic redirection" page prints as ``iptables-save`` output),
``cni/pkg/iptables/iptables_linux.go`` (``ip rule … fwmark 0x111/0xfff pref 32764 lookup 100``
and ``local 0.0.0.0/0 dev lo table 100``), ``cni/pkg/iptables/testdata/hostprobe.golden``
(the node's SNAT of kubelet probes to 169.254.7.127).
"""

from __future__ import annotations

from pathlib import Path

from ambientlab.core.trace.demo import short_name
from ambientlab.live.netns import NamespaceSet
from ambientlab.live.nodes import WORKER2, NodeSpec
from ambientlab.live.outputs import SYSCTL, clean_output, netnsid_names
from ambientlab.live.reconstruct import wire, write_texts

UPSTREAM_INPOD = "aaf597fbfae607adf4bb4e77538a7ea98995328a"
PROBE_SOURCE = "169.254.7.127"
PROBE_SET = "istio-inpod-probes"
INPOD_MARK, TPROXY_MARK = "0x539", "0x111"  # ztunnel's own sockets; TPROXY and the connection mark

POD_RULES = """*mangle
:ISTIO_OUTPUT - [0:0]
:ISTIO_PRERT - [0:0]
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
-A ISTIO_PRERT -s 169.254.7.127/32 -p tcp -m tcp -j ACCEPT
-A ISTIO_PRERT ! -d 127.0.0.1/32 -i lo -p tcp -j ACCEPT
-A ISTIO_PRERT -p tcp -m tcp --dport 15008 -m mark ! --mark 0x539/0xfff -j TPROXY --on-port 15008 --on-ip 0.0.0.0 --tproxy-mark 0x111/0xfff
-A ISTIO_PRERT -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x111/0xfff
COMMIT
*nat
:ISTIO_OUTPUT - [0:0]
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -d 169.254.7.127/32 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
COMMIT
"""
POD_ROUTING = [f"ip rule add fwmark {TPROXY_MARK}/0xfff pref 32764 lookup 100",
               "ip route add local 0.0.0.0/0 dev lo table 100"]
NODE_RULES = f"""*nat
:KUBE-SERVICES - [0:0]
:ISTIO_POSTRT - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -j ISTIO_POSTRT
-A ISTIO_POSTRT -m owner --socket-exists -p tcp -m set --match-set {PROBE_SET} dst -j SNAT --to-source {PROBE_SOURCE}
COMMIT
"""
RECORDED_PODS = ("productpage-v1", "reviews-v1")  # the pods whose namespaces the capture prints


def build_inpod(ns: NamespaceSet, spec: NodeSpec = WORKER2) -> None:
    """Wire ``spec``'s node and pods (:func:`~ambientlab.live.reconstruct.wire`), then install the
    in-pod rules and routing in every app pod's namespace and the probe SNAT on the node."""
    wire(ns, spec)
    ns.run("node", "ipset", "restore", stdin=f"create {PROBE_SET} hash:ip\n"
           + "".join(f"add {PROBE_SET} {p.ip}\n" for p in spec.pods))
    ns.run("node", "iptables-restore", stdin=NODE_RULES)
    for pod in spec.pods:
        ns.run(pod.veth, "iptables-restore", stdin=POD_RULES)
        ns.script(pod.veth, POD_ROUTING)


def outputs(spec: NodeSpec = WORKER2) -> dict[str, dict[str, list[str]]]:
    """Return {namespace: {capture path: command}} of what the in-pod capture records."""
    out: dict[str, dict[str, list[str]]] = {"node": {
        "node/ip-addr.txt": ["ip", "addr"], "node/ip-rule.txt": ["ip", "rule"],
        "node/ip-route-table-main.txt": ["ip", "route", "show", "table", "main"],
        "node/ip-route-table-local.txt": ["ip", "route", "show", "table", "local"],
        "node/iptables-save.txt": ["iptables-save"], "node/ipset-list.txt": ["ipset", "list"],
        "node/sysctl-net-ipv4.txt": SYSCTL,
    }}
    for pod in spec.pods:
        name = short_name(pod.name)
        if name in RECORDED_PODS:
            out[pod.veth] = {
                f"{name}/ip-addr.txt": ["ip", "addr"], f"{name}/ip-rule.txt": ["ip", "rule"],
                f"{name}/ip-route-table-100.txt": ["ip", "route", "show", "table", "100"],
                f"{name}/ip-route-table-main.txt": ["ip", "route", "show", "table", "main"],
                f"{name}/ip-route-table-local.txt": ["ip", "route", "show", "table", "local"],
                f"{name}/iptables-save.txt": ["iptables-save"], f"{name}/sysctl-net-ipv4.txt": SYSCTL,
            }
    return out


def reconstruct_inpod(spec: NodeSpec = WORKER2, prefix: str | None = None) -> dict[str, str]:
    """Build the in-pod node in namespaces; return {capture path: text the tools printed}."""
    texts: dict[str, str] = {}
    with NamespaceSet(prefix) as ns:
        build_inpod(ns, spec)
        for host, files in outputs(spec).items():
            for path, argv in files.items():
                text = clean_output(ns.run(host, *argv))
                texts[path] = netnsid_names(ns, host, text) if argv[:2] == ["ip", "addr"] else text
    return texts


def write_inpod(root: Path, spec: NodeSpec = WORKER2) -> list[str]:
    """Write the in-pod capture's reconstructed files into ``root``; return their paths."""
    texts = reconstruct_inpod(spec)
    write_texts(root, texts)
    return list(texts)
