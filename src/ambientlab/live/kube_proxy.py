"""kube-proxy v1.25's service chains on the demo node, rebuilt: the rules its iptables mode
writes for the demo's services and endpoints, loaded in a network namespace together with
istio-cni's rules (in the order the two ran on the node), and printed by ``iptables-save``.

The rules follow ``syncProxyRules`` and ``writeServiceToEndpointRules`` of kubernetes/kubernetes
``pkg/proxy/iptables/proxier.go`` (:data:`UPSTREAM`): one ``KUBE-SERVICES`` rule per service port,
a ``KUBE-SVC-…`` chain per service port (its masquerade rule for sources outside the cluster CIDR,
then one branch per endpoint, each but the last drawn with probability 1/(endpoints left)), a
``KUBE-SEP-…`` chain per endpoint (masquerade hairpin traffic, then DNAT), ``KUBE-MARK-MASQ``,
``KUBE-POSTROUTING`` and the ``KUBE-NODEPORTS`` jump. Chain names are upstream's hashes. Only the
reviews service's address is recorded; every other value is in :data:`ASSUMPTIONS`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from ambientlab.live.netns import KERNEL_DEFAULTS, NamespaceSet
from ambientlab.live.nodes import WORKER2, Pod
from ambientlab.live.outputs import clean_output
from ambientlab.live.reconstruct import _node_iptables

UPSTREAM = ("kubernetes/kubernetes tag v1.25.0 (commit a866cbe2e5bbaa01cfd5e969aa3e033f3282a8a2), "
            "pkg/proxy/iptables/proxier.go (syncProxyRules, writeServiceToEndpointRules, portProtoHash)")
PATH = "node/iptables-save-kube-proxy.txt"
CLUSTER_CIDR = "10.244.0.0/16"  # kind's podSubnet, which kind also gives kube-proxy as clusterCIDR
MASQUERADE_MARK = "0x4000"  # kube-proxy's default --iptables-masquerade-bit 14


@dataclass(frozen=True)
class ServicePort:
    """One port of a ClusterIP service and its ready endpoints (``IP:PORT``)."""

    namespace: str
    name: str
    port_name: str
    cluster_ip: str
    port: int
    protocol: str  # "tcp" or "udp", lower case as kube-proxy writes it
    endpoints: tuple[str, ...]

    @property
    def key(self) -> str:
        """Return the service port's name as kube-proxy prints it: ``NAMESPACE/NAME:PORT``."""
        return f"{self.namespace}/{self.name}:{self.port_name}"


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(svc: ServicePort) -> str:
    """Return the ``KUBE-SVC-…`` chain name of ``svc`` (upstream's ``portProtoHash``)."""
    return "KUBE-SVC-" + _hash(svc.key + svc.protocol)


def sep_chain(svc: ServicePort, endpoint: str) -> str:
    """Return the ``KUBE-SEP-…`` chain name of ``endpoint`` of ``svc``."""
    return "KUBE-SEP-" + _hash(svc.key + svc.protocol + endpoint)


def _http(name: str, ip: str, *pods: str) -> ServicePort:
    return ServicePort("default", name, "http", ip, 9080, "tcp", tuple(sorted(f"{p}:9080" for p in pods)))


# kube-proxy sorts a service's endpoints by their text (EndpointSliceCache); the services come out
# of a Go map in any order: sorted by name here.
SERVICES = (
    ServicePort("default", "kubernetes", "https", "10.96.0.1", 443, "tcp", ("172.18.0.3:6443",)),
    _http("details", "10.96.32.147", "10.244.1.9", "10.244.2.4"),
    ServicePort("kube-system", "kube-dns", "dns", "10.96.0.10", 53, "udp", ("10.244.0.2:53", "10.244.0.3:53")),
    ServicePort("kube-system", "kube-dns", "dns-tcp", "10.96.0.10", 53, "tcp", ("10.244.0.2:53", "10.244.0.3:53")),
    ServicePort("kube-system", "kube-dns", "metrics", "10.96.0.10", 9153, "tcp", ("10.244.0.2:9153", "10.244.0.3:9153")),
    _http("productpage", "10.96.145.62", "10.244.2.3"),
    _http("ratings", "10.96.71.16", "10.244.2.2"),
    _http("reviews", "10.96.183.192", "10.244.1.23", "10.244.2.5", "10.244.2.8"),
)
ASSUMPTIONS = (
    "kube-proxy runs in iptables mode with kind's configuration: clusterCIDR 10.244.0.0/16 (so the "
    "'! -s 10.244.0.0/16' masquerade rule), masquerade bit 14 (mark 0x4000), iptables with --random-fully, "
    "no masqueradeAll, no nodePortAddresses",
    "the service CIDR is kind's 10.96.0.0/16: kubernetes 10.96.0.1:443 and kube-dns 10.96.0.10 (ports 53/udp, "
    "53/tcp, 9153) are kubeadm's defaults; details 10.96.32.147, productpage 10.96.145.62 and ratings "
    "10.96.71.16 are made up; only reviews 10.96.183.192:9080 is recorded (Zhao's part 3)",
    "every bookinfo service has one port named http, 9080/TCP, and its pods listen on 9080 (bookinfo's "
    "manifests; not recorded for this cluster)",
    "the endpoints: reviews-v1 10.244.1.23 (on ambient-worker, as in part 3), reviews-v2 10.244.2.5 and "
    "reviews-v3 10.244.2.8 (recorded); productpage 10.244.2.3 and ratings 10.244.2.2 (recorded); details-v1 "
    "10.244.1.9 on ambient-worker (the book's assumed address) and a second replica 10.244.2.4 on this node, "
    "outside the mesh (assumed: the client of chapter 10's walk); the API server 172.18.0.3:6443 and CoreDNS "
    "10.244.0.2/10.244.0.3 (assumed)",
    "services of istio-system (istiod) and any others are left out; the service rules are in name order "
    "(kube-proxy writes them in a Go map's order)",
    "only kube-proxy's nat table is rebuilt (with the empty mangle and nat KUBE-PROXY-CANARY chains); its "
    "filter chains (KUBE-FORWARD, KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL), "
    "kubelet's chains (KUBE-FIREWALL, KUBE-MARK-DROP, KUBE-KUBELET-CANARY) and kindnet's KIND-MASQ-AGENT are not",
)


def startup_commands() -> list[str]:
    """Return the commands kube-proxy runs before its first sync (``EnsureChain``, then
    ``EnsureRule(Prepend, …)`` for each nat jump; the monitor's canary chains)."""
    return [
        "iptables -t mangle -N KUBE-PROXY-CANARY", "iptables -t nat -N KUBE-PROXY-CANARY",
        "iptables -t nat -N KUBE-SERVICES",
        'iptables -t nat -I OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        'iptables -t nat -I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "iptables -t nat -N KUBE-POSTROUTING",
        'iptables -t nat -I POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ]


def nat_sync(services: tuple[ServicePort, ...] = SERVICES) -> str:
    """Return the ``*nat`` block kube-proxy v1.25 hands to ``iptables-restore --noflush`` for
    ``services`` (rules as ``syncProxyRules`` writes them, before iptables normalises them)."""
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    mark = f"{MASQUERADE_MARK}/{MASQUERADE_MARK}"
    rules = [
        f"-A KUBE-POSTROUTING -m mark ! --mark {mark} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQUERADE_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQUERADE_MARK}",
    ]
    for svc in services:
        proto, svc_name = svc.protocol, svc_chain(svc)
        match = (f'-m comment --comment "{svc.key} cluster IP" -m {proto} -p {proto} -d {svc.cluster_ip} '
                 f"--dport {svc.port}")
        rules.append(f"-A KUBE-SERVICES {match} -j {svc_name}")
        chains.append(svc_name)
        rules.append(f"-A {svc_name} {match} ! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ")
        count = len(svc.endpoints)
        for i, endpoint in enumerate(svc.endpoints):
            draw = f" -m statistic --mode random --probability {1 / (count - i):0.10f}" if i < count - 1 else ""
            rules.append(f'-A {svc_name} -m comment --comment "{svc.key} -> {endpoint}"{draw} -j {sep_chain(svc, endpoint)}')
        for endpoint in svc.endpoints:
            sep = sep_chain(svc, endpoint)
            chains.append(sep)
            rules.append(f"-A {sep} -m comment --comment {svc.key} -s {endpoint.split(':')[0]} -j KUBE-MARK-MASQ")
            rules.append(f"-A {sep} -m comment --comment {svc.key} -m {proto} -p {proto} -j DNAT --to-destination {endpoint}")
    rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
                 'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    return "*nat\n" + "".join(f":{c} - [0:0]\n" for c in chains) + "".join(r + "\n" for r in rules) + "COMMIT\n"


def reconstruct_kube_proxy(prefix: str | None = None) -> str:
    """Return what ``iptables-save`` prints on a namespace where kube-proxy's startup commands,
    its first sync (:func:`nat_sync`) and then istio-cni's node rules (as in the demo capture's
    reconstruction) have run: the text of :data:`PATH`."""
    spec = WORKER2
    with NamespaceSet(prefix) as ns:
        ns.add("node")
        ns.run("node", "ipset", "create", "ztunnel-pods-ips", "hash:ip")
        ns.script("node", startup_commands())
        ns.run("node", "iptables-restore", "--noflush", stdin=nat_sync())
        istio = [c for c in _node_iptables(spec.ztunnel.veth, spec.ztunnel.ip, spec.host_ip) if "KUBE-SERVICES" not in c]
        ns.script("node", istio)
        return clean_output(ns.run("node", "iptables-save"))


DETAILS = Pod("details-v1", "10.244.2.4", "vethdetails", 12)  # assumed: see ASSUMPTIONS


def add_pod_outside_mesh(ns: NamespaceSet, pod: Pod = DETAILS) -> None:
    """Wire ``pod`` to the demo node built in ``ns`` as kindnet and the CNI ptp plugin wire the
    others (its own namespace, named by its host veth), but leave it out of the ipset and of
    table 100: a pod outside the mesh, like the tracer's details-v1."""
    spec = WORKER2
    ns.add(pod.veth, {**KERNEL_DEFAULTS, "net.ipv4.ip_forward": "0"})
    ns.run("node", "ip", "link", "add", pod.veth, "index", str(pod.index), "type", "veth", "peer", "name", "eth0",
           "index", "2", "netns", ns.full(pod.veth))
    ns.script("node", [f"ip addr add {spec.host_ip}/32 dev {pod.veth}", f"ip link set {pod.veth} up",
                       f"ip route add {pod.ip} dev {pod.veth} scope host"])
    ns.script(pod.veth, [f"ip addr add {pod.ip}/24 brd + dev eth0", "ip link set eth0 up",
                         f"ip route del {spec.pod_cidr} dev eth0", f"ip route add {spec.host_ip} dev eth0 scope link",
                         f"ip route add {spec.pod_cidr} via {spec.host_ip} dev eth0",
                         f"ip route add default via {spec.host_ip} dev eth0"])
