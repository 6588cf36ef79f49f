"""kube-proxy's chains in the tracer: random branches pinned and listed, DNAT and its reverse
translation, the 0x4000 mark and MASQUERADE, addrtype, and the reconstruction's manifest."""

from __future__ import annotations

import pytest

from ambientlab.core.capture import load_capture
from ambientlab.core.parse.iptables import parse_iptables_save
from ambientlab.core.trace.kubeproxy import KUBE_PROXY_RULES, kube_proxy_network, service_branches
from ambientlab.core.trace.netfilter import Packet, Ruleset, UnpinnedDraw, branches, pinned_text
from ambientlab.core.trace.walks import outcomes, packet_hops, walk
from ambientlab.live.kube_proxy import SERVICES, nat_sync, sep_chain, svc_chain

CAPTURE = load_capture("kind-2022-ambient-worker2")
THREE = """*nat
:PREROUTING ACCEPT [0:0]
:SVC - [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
-A PREROUTING -j SVC
-A SVC -m statistic --mode random --probability 0.33333333349 -j A
-A SVC -m statistic --mode random --probability 0.50000000000 -j B
-A SVC -j C
-A A -p tcp -m tcp -j DNAT --to-destination 10.0.0.1:80
-A B -p tcp -m tcp -j DNAT --to-destination 10.0.0.2:80
-A C -p tcp -m tcp -j DNAT --to-destination 10.0.0.3:80
COMMIT
"""


def _chosen(rules: Ruleset) -> str:
    hits = rules.run("PREROUTING", Packet(src=1, dst=2, proto=6, sport=1, dport=80), nat=True).hits
    return [h.target for h in hits if h.chain == "SVC"][-1]


def test_random_branches_are_pinned_by_chain_or_endpoint_and_listed() -> None:
    rules = Ruleset(THREE, "t")
    with pytest.raises(UnpinnedDraw, match="pin one of its branches"):
        _chosen(rules)
    for target, want in (("A", "A"), ("10.0.0.2:80", "B"), ("C", "C")):
        rules.pin("nat", target)
        assert _chosen(rules) == want
    with pytest.raises(KeyError):
        rules.pin("nat", "10.0.0.9:80")
    chances = [round(b["chance"], 6) for b in branches(rules, "nat", "SVC")]
    assert chances == [0.333333, 0.333333, 0.333333]
    rules.pin("nat", "B")
    text = pinned_text(THREE, rules).splitlines()
    assert "--probability 0.00000000000 -j A" in text[7] and "--probability 1.00000000000 -j B" in text[8]
    assert pinned_text(THREE, rules).count("\n") == THREE.count("\n")


def test_the_reconstruction_is_upstreams_rules_and_keeps_istio_cnis() -> None:
    text = CAPTURE.text(KUBE_PROXY_RULES)
    recorded = CAPTURE.text("node/iptables-save.txt").splitlines()
    assert all(line in text.splitlines() for line in recorded)
    reviews = next(s for s in SERVICES if s.name == "reviews")
    assert reviews.cluster_ip == "10.96.183.192" and reviews.port == 9080
    assert f"-j {svc_chain(reviews)}" in text and f":{sep_chain(reviews, '10.244.2.5:9080')} - " in text
    ours = [line for line in nat_sync().splitlines() if line.startswith("-A ")]
    saved = parse_iptables_save(text, "saved").rules
    kube = saved[saved["chain"].str.startswith("KUBE-") & (saved["table"] == "nat")]
    endpoints = sum(len(s.endpoints) for s in SERVICES)  # a branch and two KUBE-SEP rules each
    assert len(kube) == len(ours) == 4 + 2 * len(SERVICES) + 3 * endpoints + 1
    entry = CAPTURE.entry(KUBE_PROXY_RULES)
    assert entry["origin"] == "reconstructed" and "v1.25.0" in entry["basis"]
    assumed = " ".join(CAPTURE.manifest["assumptions"])
    for value in ("10.96.32.147", "10.96.145.62", "10.96.71.16", "10.96.0.1", "10.96.0.10", "10.244.2.4", "9080"):
        assert value in assumed


def test_service_branches_list_the_reviews_endpoints() -> None:
    frame = service_branches(CAPTURE)
    assert list(frame["endpoint"]) == ["10.244.1.23:9080", "10.244.2.5:9080", "10.244.2.8:9080"]
    assert list(frame["chance"]) == [0.333333, 0.333333, 0.333333]
    assert frame["probability"].iloc[-1] == 1.0


def test_outside_mesh_walk_dnats_and_translates_the_reply_back() -> None:
    frame = walk(CAPTURE, "service-outside-mesh-remote")
    syn = packet_hops(frame, 1)
    assert syn["matched"].str.contains("DNAT --to-destination 10.244.1.23:9080").any()
    assert syn["headers"].iloc[-1].startswith("10.244.2.4:41000 > 10.244.1.23:9080")
    reply = packet_hops(frame, 2)
    assert reply["headers"].iloc[1].startswith("10.244.1.23:9080 > 10.244.2.4")
    assert reply["headers"].iloc[-1].startswith("10.96.183.192:9080 > 10.244.2.4:41000")
    assert not reply["where"].str.startswith("nat ").any()  # a reply never runs the nat table
    undone = reply[reply["where"] == "conntrack"]  # conntrack rewrites it, and the hop table says where
    assert list(undone["hook"]) == ["POSTROUTING"] and "DNAT undone" in undone["matched"].iloc[0]
    ack = packet_hops(frame, 3)
    assert not ack["where"].str.startswith("nat ").any() and ack["headers"].iloc[-1].startswith("10.244.2.4:41000 > 10.244.1.23")
    local = outcomes(CAPTURE, "service-outside-mesh-local")
    assert local["ends"].iloc[0] == "socket ztunnel_inbound_plaintext (15006)"
    assert local["ends"].iloc[1] == "arrives in pod details-v1"


def test_node_traffic_is_marked_0x4000_and_masqueraded() -> None:
    frame = walk(CAPTURE, "service-from-node")
    syn = packet_hops(frame, 1)
    marked = syn[syn["where"] == "nat KUBE-MARK-MASQ"]
    assert list(marked["mark_after"]) == ["0x4000"]
    assert syn[syn["matched"].str.contains("MASQUERADE")]["mark_after"].tolist() == ["0x0"]
    assert packet_hops(frame, 2)["headers"].iloc[-1].startswith("10.96.183.192:9080 > 172.18.0.2:42000")


def test_masquerade_takes_the_out_devices_address() -> None:
    net = kube_proxy_network(CAPTURE)
    node = net.machines["node"].host
    assert node.masquerade_source("eth0", 0xAC120004) == 0xAC120002  # 172.18.0.4 -> 172.18.0.2
    assert node.is_local(0xAC120002) and not node.is_local(0x0A60B7C0)


def test_mesh_pod_is_never_seen_by_kube_proxy_unless_the_nat_accept_goes() -> None:
    kept = walk(CAPTURE, "service-from-mesh-pod")
    pod = kept[kept["headers"].str.startswith("10.244.2.3:40000")]  # the pod's packet, not geneve's outer one
    assert not pod["where"].str.startswith("nat KUBE-").any() and pod["where"].str.startswith("nat ").any()
    assert kept["headers"].iloc[-1].startswith("10.244.2.3:40000 > 10.96.183.192:9080")
    broken = walk(CAPTURE, "service-from-mesh-pod", without="node-nat-accept-0x100")
    assert broken["matched"].str.contains("DNAT --to-destination 10.244.2.5:9080").any()
    assert broken["headers"].iloc[-1].startswith("10.244.2.3:40000 > 10.244.2.5:9080")
    assert broken["matched"].iloc[-1] == "socket ztunnel_outbound (15001)"


def test_a_kube_proxy_lab_plan_loads_the_reconstruction_and_adds_details() -> None:
    from ambientlab.live.lab.plan import PEER, build_plan

    plain = build_plan(CAPTURE, "veth", lambda h: f"x-{h}")
    plan = build_plan(CAPTURE, "veth", lambda h: f"x-{h}", kube_proxy=True)
    restores = {s.stdin for s in plan.steps if s.host == "node" and s.argv[0] == "iptables-restore"}
    assert restores == {CAPTURE.text(KUBE_PROXY_RULES)}
    assert plan.pods["details-v1"] == "10.244.2.4" and "details-v1" not in plain.pods
    assert ("ip", "route", "add", "10.244.2.4", "dev", "vethdetails", "scope", "host") in [s.argv for s in plan.steps]
    assert "10.244.1.23" in plan.addresses(PEER) and "10.244.1.23" not in plain.addresses(PEER)
    ipset = [s.stdin for s in plan.steps if s.argv[:2] == ("ipset", "restore")]
    assert ipset and "10.244.2.4" not in str(ipset)  # outside the mesh
