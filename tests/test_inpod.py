"""The in-pod design (Istio 1.22): its reconstructed capture, the tracer's walks through the
pod's rules, and the computed comparison with the 2022 design."""

from __future__ import annotations

import pandas as pd
import pytest

from ambientlab import load_capture
from ambientlab.core.trace.designs import JOBS, compare_designs
from ambientlab.core.trace.inpod import inpod_network, pod_folders
from ambientlab.core.trace.walks import WALKS, packet_hops, walk
from ambientlab.live.reconstruct_inpod import POD_RULES

INPOD = load_capture("inpod-1.22-ambient-worker2")
DEMO = load_capture("kind-2022-ambient-worker2")


def _ends(scenario: str) -> dict[str, str]:
    hops = walk(INPOD, scenario)
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
        "3": "productpage-v1: socket ztunnel HBONE to the remote pod",
    }
    hops = walk(INPOD, "inpod-outbound")
    first = packet_hops(hops, 1)
    assert set(first["host"]) == {"productpage-v1"}  # the SYN never leaves the pod


def test_inbound_uses_tproxy_and_the_connection_mark_inside_the_pod() -> None:
    assert _ends("inpod-inbound") == {
        "1": "reviews-v1: socket ztunnel 15008 (inbound HBONE)",
        "2": "node: leaves for the rest of the cluster (eth0)",
        "3": "reviews-v1: socket app 9080",
        "4": "reviews-v1: socket ztunnel to the app (client's address)",
    }
    hops = walk(INPOD, "inpod-inbound")
    answer = packet_hops(hops, 4)
    assert "table 100" in set(answer["where"]) and answer["mark_after"].iloc[-1] == "0x111"
    assert _ends("inpod-plaintext-inbound") == {"1": "reviews-v1: socket ztunnel 15006 (inbound plaintext)"}


def test_probes_are_snatted_on_the_node_and_accepted_in_the_pod() -> None:
    assert _ends("inpod-probe") == {"1": "reviews-v1: socket app 9080", "2": "node: socket kubelet"}
    hops = walk(INPOD, "inpod-probe")
    arriving = packet_hops(hops, 1).query("host == \'reviews-v1\'")
    assert arriving["headers"].iloc[0].startswith("169.254.7.127:")


def test_without_the_0x539_exemption_ztunnel_would_capture_its_own_hbone() -> None:
    net = inpod_network(INPOD)
    rules = net.machines["productpage-v1"].rules
    assert rules is not None
    chain = rules.chains[("nat", "ISTIO_OUTPUT")]
    redirect = next(e for e in chain if "REDIRECT" in e[1]["text"])
    text = redirect[1]["text"].replace("-m mark ! --mark 0x539/0xfff ", "")
    from ambientlab.core.trace.netfilter import Ruleset

    patched = INPOD.text("productpage-v1/iptables-save.txt").replace(redirect[1]["text"], text)
    net.machines["productpage-v1"].rules = Ruleset(patched, "patched")
    from ambientlab.core.trace.scenarios import play

    hops = play(net, WALKS["inpod-outbound"].sends(net))
    second = packet_hops(hops, 2)
    assert second["matched"].iloc[-1] == "socket ztunnel 15001 (outbound)"  # a loop back into itself


def test_the_comparison_is_computed_for_every_job_and_design() -> None:
    table = compare_designs(DEMO, INPOD)
    assert len(table) == 2 * len(JOBS)
    outbound = table.loc["an app's outbound SYN reaches ztunnel"]
    assert outbound.loc["1.22 in-pod", "namespaces"] == "productpage-v1"
    assert outbound.loc["1.22 in-pod", "marks set"] == "none" and outbound.loc["1.22 in-pod", "tunnels"] == "none"
    assert outbound.loc["2022 node-level", "tunnels"] == "istioout, pistioout"
    assert outbound.loc["2022 node-level", "routing tables"] == "node 101, node main, ztunnel local, ztunnel 100"
    answer = table.loc["the app's answer to that source returns to ztunnel"]
    assert answer.loc["1.22 in-pod", "marks set"] == "0x111"
    assert answer.loc["2022 node-level", "marks set"] == "0x40, 0x4d3"


def test_unknown_walks_and_pieces_are_named_and_inpod_walks_take_no_pieces() -> None:
    with pytest.raises(KeyError, match=r"same-node-vip, .*inpod-outbound"):
        walk(INPOD, "nope")
    with pytest.raises(KeyError, match="node-ip-rule-102"):
        walk(DEMO, "same-node-vip", without="nope")
    with pytest.raises(ValueError, match="2022 node-level walks only"):
        walk(INPOD, "inpod-outbound", without="node-ip-rule-102")
    with pytest.raises(ValueError, match=r"inpod-outbound is a 1\.22 in-pod walk, and capture kind-2022-ambient-worker2 has no pod"):
        walk(DEMO, "inpod-outbound")
    with pytest.raises(ValueError, match=r"same-node-vip is a 2022 node-level walk, and capture inpod-1\.22-ambient-worker2 lacks"):
        walk(INPOD, "same-node-vip")
    with pytest.raises(KeyError, match="the packets are: 1 "):
        packet_hops(walk(INPOD, "inpod-outbound"), 9)


def test_same_node_goes_through_both_pods_ztunnel_sockets() -> None:
    assert _ends("inpod-same-node") == {
        "1": "productpage-v1: socket ztunnel 15001 (outbound)",
        "2": "reviews-v1: socket ztunnel 15006 (inbound plaintext)",
        "3": "reviews-v1: socket app 9080",
        "4": "reviews-v1: socket ztunnel to the app (client's address)",
    }


def test_the_recorded_inpod_lab_agrees_with_the_capture_and_the_tracer() -> None:
    import json

    from ambientlab.core.recordings import verdict

    lab = load_capture("lab-2026-11-inpod")
    found = {p: verdict(INPOD, p, INPOD.entry(p)["parser"], lab.text(p)) for p in lab.files.index if p in INPOD.files.index}
    assert len(found) == 21 and set(found.values()) <= {"same text", "same members"}
    ends = walk(INPOD, "inpod-same-node").groupby("packet", sort=False).tail(1)["matched"].tolist()
    accepted = {pod: [e for e in map(json.loads, lab.text(f"session/ztunnel-{pod}.log").splitlines())
                      if e["event"] == "accepted"] for pod in ("productpage-v1", "reviews-v1")}
    first = next(e for e in accepted["productpage-v1"] if e["original_dst"] == "10.244.2.7:9080")
    assert ends[0] == f"socket ztunnel {first['listener']} (outbound)"
    taken = next(e for e in accepted["reviews-v1"] if e["peer"] == first["onward"].split(" -> ")[0])
    assert ends[1] == f"socket ztunnel {taken['listener']} (inbound plaintext)"
    connections = [json.loads(x) for x in lab.text("session/connections.jsonl").splitlines()]
    for c in connections:
        assert c["result"].split("you are ")[1].startswith(c["client_address"] + ":")


def _app_to_ztunnel_handshake() -> pd.DataFrame:
    """The app's connection to 15001 in productpage-v1's namespace: SYN, ztunnel's SYN-ACK from
    its accepted socket (mark 0x539, looped back), the app's ACK."""
    from ambientlab.core.trace import ipv4
    from ambientlab.core.trace.inpod import INPOD_MARK, PRODUCTPAGE, REVIEWS_V1
    from ambientlab.core.trace.network import Socket
    from ambientlab.core.trace.scenarios import Send, play, tcp

    net = inpod_network(INPOD)
    local = ipv4.to_int("127.0.0.1")
    pod = net.machines["productpage-v1"]
    pod.sockets.append(Socket("app", (PRODUCTPAGE, 41234), (REVIEWS_V1, 9080)))
    first = play(net, [Send("1 SYN", "productpage-v1", tcp(PRODUCTPAGE, 41234, REVIEWS_V1, 9080, "S"))])
    pod.sockets.append(Socket("accepted", (local, 15001), (PRODUCTPAGE, 41234), mark=INPOD_MARK))
    rest = play(net, [Send("2 SYN-ACK", "productpage-v1", tcp(local, 15001, PRODUCTPAGE, 41234, "SA"), INPOD_MARK),
                      Send("3 ACK", "productpage-v1", tcp(PRODUCTPAGE, 41234, REVIEWS_V1, 9080, "A"))])
    return pd.concat([first, rest], ignore_index=True)


def test_a_looped_back_packet_keeps_its_connection_so_the_app_inherits_0x111() -> None:
    # ztunnel's SYN-ACK (mark 0x539) loops back and ISTIO_PRERT stamps the app's *own* connection with
    # 0x111; the app's next packet has it restored in OUTPUT. An nft trace of the in-pod lab shows the
    # same (tests/kernel/test_inpod_kernel.py).
    hops = _app_to_ztunnel_handshake()
    synack = hops[hops["packet"] == "2 SYN-ACK"]
    assert synack["matched"].iloc[-1] == "socket app" and synack["headers"].iloc[-1].startswith("10.244.2.7:9080 >")
    ack = hops[(hops["packet"] == "3 ACK") & (hops["hook"] == "OUTPUT")]
    assert ack["ctmark"].iloc[0] == "0x111" and ack["mark_after"].iloc[-1] == "0x111"
    assert hops[hops["packet"] == "3 ACK"]["matched"].iloc[-1] == "socket accepted"
