"""The in-pod design (Istio 1.22): its reconstructed capture, the tracer's walks through the
pod's rules, and the computed comparison with the 2022 design."""

from __future__ import annotations

import pytest

from ambientlab import load_capture
from ambientlab.reconstruct_inpod import POD_RULES
from ambientlab.trace.inpod import JOBS, compare_designs, inpod_network, pod_folders, walk_inpod

INPOD = load_capture("inpod-1.22-ambient-worker2")
DEMO = load_capture("kind-2022-ambient-worker2")


def _ends(scenario: str) -> dict[str, str]:
    hops = walk_inpod(INPOD, scenario)
    last = hops.groupby("packet", sort=False).tail(1)
    return {p.split()[0]: f"{h}: {m}" for p, h, m in zip(last["packet"], last["host"], last["matched"], strict=True)}


def test_the_pod_rules_are_the_upstream_ones_as_iptables_save_prints_them() -> None:
    printed = INPOD.text("productpage-v1/iptables-save.txt")
    for line in POD_RULES.splitlines():
        if line.startswith("-A "):
            assert f"\n{line}\n" in printed
    assert "32764:\tfrom all fwmark 0x111/0xfff lookup 100" in INPOD.text("reviews-v1/ip-rule.txt")
    assert INPOD.text("productpage-v1/ip-route-table-100.txt") == "local default dev lo scope host\n"
    node = INPOD.text("node/iptables-save.txt")
    assert "-j SNAT --to-source 169.254.7.127" in node and "ztunnel-" not in node
    assert pod_folders(INPOD) == ["productpage-v1", "reviews-v1"]


def test_outbound_is_redirected_to_15001_inside_the_pod_and_hbone_leaves_untouched() -> None:
    assert _ends("inpod-outbound") == {
        "1": "productpage-v1: socket ztunnel 15001 (outbound)",
        "2": "node: leaves for the rest of the cluster (eth0)",
        "3": "productpage-v1: socket ztunnel HBONE to reviews-v1",
    }
    hops = walk_inpod(INPOD, "inpod-outbound")
    first = hops[hops["packet"].str.startswith("1 ")]
    assert set(first["host"]) == {"productpage-v1"}  # the SYN never leaves the pod


def test_inbound_uses_tproxy_and_the_connection_mark_inside_the_pod() -> None:
    assert _ends("inpod-inbound") == {
        "1": "reviews-v1: socket ztunnel 15008 (inbound HBONE)",
        "2": "node: leaves for the rest of the cluster (eth0)",
        "3": "reviews-v1: socket app 9080",
        "4": "reviews-v1: socket ztunnel to the app (client's address)",
    }
    hops = walk_inpod(INPOD, "inpod-inbound")
    answer = hops[hops["packet"].str.startswith("4 ")]
    assert "table 100" in set(answer["where"]) and answer["mark_after"].iloc[-1] == "0x111"
    assert _ends("inpod-plaintext-inbound") == {"1": "reviews-v1: socket ztunnel 15006 (inbound plaintext)"}


def test_probes_are_snatted_on_the_node_and_accepted_in_the_pod() -> None:
    assert _ends("inpod-probe") == {"1": "reviews-v1: socket app 9080", "2": "node: socket kubelet"}
    hops = walk_inpod(INPOD, "inpod-probe")
    arriving = hops[(hops["host"] == "reviews-v1") & hops["packet"].str.startswith("1 ")]
    assert arriving["headers"].iloc[0].startswith("169.254.7.127:")


def test_without_the_0x539_exemption_ztunnel_would_capture_its_own_hbone() -> None:
    net = inpod_network(INPOD)
    rules = net.machines["productpage-v1"].rules
    assert rules is not None
    chain = rules.chains[("nat", "ISTIO_OUTPUT")]
    redirect = next(e for e in chain if "REDIRECT" in e[1]["text"])
    text = redirect[1]["text"].replace("-m mark ! --mark 0x539/0xfff ", "")
    from ambientlab.trace.netfilter import Ruleset

    patched = INPOD.text("productpage-v1/iptables-save.txt").replace(redirect[1]["text"], text)
    net.machines["productpage-v1"].rules = Ruleset(patched, "patched")
    from ambientlab.trace.inpod import SCENARIOS
    from ambientlab.trace.scenarios import play

    hops = play(net, SCENARIOS["inpod-outbound"](net))
    second = hops[hops["packet"].str.startswith("2 ")]
    assert second["matched"].iloc[-1] == "socket ztunnel 15001 (outbound)"  # a loop back into itself


def test_the_comparison_is_computed_for_every_job_and_design() -> None:
    table = compare_designs(DEMO, INPOD)
    assert len(table) == 2 * len(JOBS)
    outbound = table.loc["an app's outbound SYN reaches ztunnel"]
    assert outbound.loc["1.22 in-pod", "namespaces"] == "productpage-v1"
    assert outbound.loc["1.22 in-pod", "marks set"] == "none" and outbound.loc["1.22 in-pod", "tunnels"] == "none"
    assert outbound.loc["2022 node-level", "tunnels"] == "istioout, pistioout"
    answer = table.loc["the app's answer to that source returns to ztunnel"]
    assert answer.loc["1.22 in-pod", "marks set"] == "0x111"
    assert answer.loc["2022 node-level", "marks set"] == "0x40, 0x4d3"


def test_unknown_inpod_scenarios_are_named() -> None:
    with pytest.raises(KeyError, match="inpod-outbound"):
        walk_inpod(INPOD, "nope")


def test_same_node_goes_through_both_pods_ztunnel_sockets() -> None:
    assert _ends("inpod-same-node") == {
        "1": "productpage-v1: socket ztunnel 15001 (outbound)",
        "2": "reviews-v1: socket ztunnel 15006 (inbound plaintext)",
        "3": "reviews-v1: socket app 9080",
        "4": "reviews-v1: socket ztunnel to the app (client's address)",
    }


def test_the_recorded_inpod_lab_agrees_with_the_capture_and_the_tracer() -> None:
    import json

    from ambientlab.lab.status import verdict

    lab = load_capture("lab-2026-11-inpod")
    found = {p: verdict(INPOD, p, INPOD.entry(p)["parser"], lab.text(p)) for p in lab.files.index if p in INPOD.files.index}
    assert len(found) == 21 and set(found.values()) <= {"same text", "same members"}
    ends = walk_inpod(INPOD, "inpod-same-node").groupby("packet", sort=False).tail(1)["matched"].tolist()
    accepted = {pod: [e for e in map(json.loads, lab.text(f"session/ztunnel-{pod}.log").splitlines())
                      if e["event"] == "accepted"] for pod in ("productpage-v1", "reviews-v1")}
    first = next(e for e in accepted["productpage-v1"] if e["original_dst"] == "10.244.2.7:9080")
    assert ends[0] == f"socket ztunnel {first['listener']} (outbound)"
    taken = next(e for e in accepted["reviews-v1"] if e["peer"] == first["onward"].split(" -> ")[0])
    assert ends[1] == f"socket ztunnel {taken['listener']} (inbound plaintext)"
    connections = [json.loads(x) for x in lab.text("session/connections.jsonl").splitlines()]
    for c in connections:
        assert c["result"].split("you are ")[1].startswith(c["client_address"] + ":")
