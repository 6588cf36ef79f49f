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

Today's rules (``rules="redirect"``, the capture ``inpod-redirect-ambient-worker2``): upstream
moved in-pod capture from TPROXY to REDIRECT (istio/istio pull request 52622, Istio 1.24). They
are rebuilt from ``cni/pkg/iptables/iptables.go`` at istio/istio
``d9c34622bf0968848d241c148c06af7af49ea483`` (``AppendInpodRules`` with DNS capture on, no
virtual interfaces, not ingress mode; ``AppendHostRules``, whose probe set is
``istio-inpod-probes-v4`` from ``cni/pkg/ipset/ipset.go``), read rule by rule; the chains' order
within each table is the one iptables-save prints. The ``ip rule``/table 100 pair is the same
(``iptables_linux.go``, which CreateInpodRules still calls at that commit).
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
def node_rules(probe_set: str) -> str:
    """Return the node's rules of the in-pod design (kube-proxy's empty service chain and istio-cni's
    probe SNAT), with the probe set named ``probe_set``."""
    return f"""*nat
:KUBE-SERVICES - [0:0]
:ISTIO_POSTRT - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -j ISTIO_POSTRT
-A ISTIO_POSTRT -m owner --socket-exists -p tcp -m set --match-set {probe_set} dst -j SNAT --to-source {PROBE_SOURCE}
COMMIT
"""


NODE_RULES = node_rules(PROBE_SET)
RECORDED_PODS = ("productpage-v1", "reviews-v1")  # the pods whose namespaces the capture prints

UPSTREAM_REDIRECT = "d9c34622bf0968848d241c148c06af7af49ea483"
REDIRECT_PROBE_SET = f"{PROBE_SET}-v4"  # fmt.Sprintf(ipset.V4Name, ProbeIPSet), V4Name = "%s-v4"
REDIRECT_POD_RULES = """*raw
:ISTIO_OUTPUT - [0:0]
:ISTIO_PRERT - [0:0]
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -p udp -m mark --mark 0x539/0xfff -m udp --dport 53 -j CT --zone 1
-A ISTIO_PRERT -p udp -m mark ! --mark 0x539/0xfff -m udp --sport 53 -j CT --zone 1
COMMIT
*mangle
:ISTIO_OUTPUT - [0:0]
:ISTIO_PRERT - [0:0]
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
COMMIT
*nat
:ISTIO_OUTPUT - [0:0]
:ISTIO_PRERT - [0:0]
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -d 169.254.7.127/32 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark 0x539/0xfff -m udp --dport 53 -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
-A ISTIO_PRERT -s 169.254.7.127/32 -p tcp -m tcp -j ACCEPT
-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006
COMMIT
"""
REDIRECT_NODE_RULES = node_rules(REDIRECT_PROBE_SET)
# Each version of the rules: (the pods' rules, the node's rules, the probe set's name).
RULES = {"1.22": (POD_RULES, NODE_RULES, PROBE_SET),
         "redirect": (REDIRECT_POD_RULES, REDIRECT_NODE_RULES, REDIRECT_PROBE_SET)}


def build_inpod(ns: NamespaceSet, spec: NodeSpec = WORKER2, rules: str = "1.22") -> None:
    """Wire ``spec``'s node and pods (:func:`~ambientlab.live.reconstruct.wire`), then install the
    in-pod rules (``rules``: a key of :data:`RULES`, Istio 1.22's TPROXY or today's REDIRECT) and
    routing in every app pod's namespace and the probe SNAT on the node."""
    pod_rules, node_rules, probe_set = RULES[rules]
    wire(ns, spec)
    ns.run("node", "ipset", "restore", stdin=f"create {probe_set} hash:ip\n"
           + "".join(f"add {probe_set} {p.ip}\n" for p in spec.pods))
    ns.run("node", "iptables-restore", stdin=node_rules)
    for pod in spec.pods:
        ns.run(pod.veth, "iptables-restore", stdin=pod_rules)
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


def reconstruct_inpod(spec: NodeSpec = WORKER2, prefix: str | None = None, rules: str = "1.22") -> dict[str, str]:
    """Build the in-pod node with ``rules`` (a key of :data:`RULES`) in namespaces; return
    {capture path: text the tools printed}."""
    texts: dict[str, str] = {}
    with NamespaceSet(prefix) as ns:
        build_inpod(ns, spec, rules)
        for host, files in outputs(spec).items():
            for path, argv in files.items():
                text = clean_output(ns.run(host, *argv))
                texts[path] = netnsid_names(ns, host, text) if argv[:2] == ["ip", "addr"] else text
    return texts


def write_inpod(root: Path, spec: NodeSpec = WORKER2, rules: str = "1.22") -> list[str]:
    """Write the in-pod capture's reconstructed files (``rules``: a key of :data:`RULES`) into
    ``root``; return their paths."""
    texts = reconstruct_inpod(spec, rules=rules)
    write_texts(root, texts)
    return list(texts)
