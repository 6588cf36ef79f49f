"""The walk as a story: the numbered steps computed from a hop table, the sequence diagram's
stretches, and the table of who connects to whom from which address."""

from __future__ import annotations

import pandas as pd

from ambientlab import load_capture
from ambientlab.book.player import story
from ambientlab.book.story import STAND_IN, legs, rule_label, steps, who_connects
from ambientlab.core.trace.walks import packet_hops, walk

CAPTURE = load_capture("kind-2022-ambient-worker2")


def test_rules_are_named_by_table_chain_and_position() -> None:
    line = "kind-2022-ambient-worker2/node/iptables-save.txt:36"
    assert rule_label(line, "mangle ztunnel-PREROUTING") == "mangle PRE-15"
    assert rule_label(None, "table 101") == "table 101"
    assert rule_label("no-such-capture/x.txt:3", "mangle FOO") == "mangle FOO"


def test_the_syn_story_names_the_capture_rule_the_ip_rule_and_the_tunnel() -> None:
    found = steps(walk(CAPTURE, "same-node-vip"), 1)
    texts = [s.text() for s in found]
    mark = next(s for s in found if s.matched.startswith("mangle PRE-15 "))
    assert mark.changed == "mark 0x100 (was 0x0)"
    assert "src in ipset ztunnel-pods-ips" in mark.why
    assert "mark 0x100 selects ip rule 101 (from all fwmark 0x100/0x100 lookup 101) → node table 101" in mark.why
    assert any(t.startswith("node: enters tunnel istioout") for t in texts)
    assert found[-1].matched == "delivered to socket accepted from productpage"
    assert not any("-j LOG" in t or "-j ztunnel-PREROUTING`" in t for t in texts)  # no silent rules
    assert all(" rule 15" not in t for t in texts)


def test_every_hop_is_in_at_most_one_step_and_silent_hops_in_none() -> None:
    frame = walk(CAPTURE, "borrowed-source")
    for label in frame["packet"].drop_duplicates():
        rows = packet_hops(frame, label)
        used = [h for s in steps(rows) for h in s.hops]
        assert len(used) == len(set(used)) and set(used) <= set(rows.index)
        silent = rows[rows["matched"].str.contains("-j LOG ") | rows["matched"].str.fullmatch(r"-j [\w-]+")]
        assert not set(silent.index) & set(used)


def test_a_goto_rule_and_the_connmark_save_are_told() -> None:
    found = steps(walk(CAPTURE, "borrowed-source"), 1)
    route = next(s for s in found if s.host == "node" and s.matched.startswith("routing:"))
    assert route.matched.startswith("routing: ip rule 100 (from all fwmark 0x200/0x200 goto 32766) → ip rule 32766")
    saved = next(s for s in found if "CONNMARK --save-mark" in s.matched)
    assert saved.changed.startswith("connmark 0x210 (was 0x0)")
    answer = steps(walk(CAPTURE, "borrowed-source"), 2)
    to_0x40 = next(s for s in answer if "0x40/0x40" in s.matched and "MARK" in s.matched)
    assert "mark 0x40 selects ip rule 102" in to_0x40.why and "connmark 0x210/0x210" in to_0x40.why


def test_a_story_renders_steps_and_folds_the_hop_table() -> None:
    told = story(walk(CAPTURE, "same-node-vip"), 5)
    page = told._repr_html_()
    assert page.count("<li>") == len(told.steps) and "<details>" in page and "ctmark" in page
    assert repr(told).splitlines()[1].startswith(" 1. reviews-v2: sends")


def test_legs_follow_the_packet_between_namespaces_and_through_the_tunnel() -> None:
    found, ending = legs(packet_hops(walk(CAPTURE, "same-node-vip"), 1))
    assert [(x.start, x.end, x.tunnel) for x in found] == [("productpage-v1", "node", False), ("node", "ztunnel", True)]
    assert found[1].via == "istioout (geneve, over node/veth6cc9a213)" and ending == "socket"
    found, ending = legs(packet_hops(walk(CAPTURE, "cross-node-hbone"), 2))
    assert found[-1].end == "the rest of the cluster (eth0)" and ending == "world"
    assert found[-1].via == "node/eth0" and found[0].via == "ztunnel/eth0 → node/veth6cc9a213"


def test_who_connects_checks_each_onward_source_against_its_downstream_peer() -> None:
    table = who_connects({n: walk(CAPTURE, n) for n in ("same-node-vip", "inbound-remote", "pod-not-in-ipset",
                                                        "borrowed-source")})
    onward = table[table["downstream peer"] != ""]
    assert onward["source"].tolist() == ["10.244.2.10", "10.244.1.19", "10.244.1.9"]
    assert (onward["source = peer"] == True).all()  # noqa: E712
    assert onward["basis"].str.startswith("derived").all()
    apps = table[table["sender"].isin(["productpage-v1", "ratings-v1"])]
    assert (apps["basis"] == "the app's own address").all()
    assert isinstance(table, pd.DataFrame) and table.index.names == ["walk", "packet"]


def test_the_folded_hop_table_hides_the_same_silent_rows_in_both_designs() -> None:
    from ambientlab.book.display import hops

    inpod = walk(load_capture("inpod-1.22-ambient-worker2"), "inpod-inbound")
    shown = hops(inpod)
    assert not shown["matched"].isin(["-j ISTIO_PRERT", "-j ISTIO_OUTPUT"]).any()
    assert (inpod["matched"] == "-j ISTIO_PRERT").any()  # they are in the walk, only not shown
    used = {h for label in inpod["packet"].drop_duplicates() for s in steps(inpod, label) for h in s.hops}
    assert used <= set(shown.index)  # every step stands for rows the folded table shows


def test_the_why_of_a_local_destination_names_ip_rule_0_not_a_missing_fwmark() -> None:
    answer = steps(walk(CAPTURE, "kubelet"), 2)
    marked = next(s for s in answer if "MARK --set-xmark 0x100/0x100" in s.matched)
    assert "no ip rule selects" not in marked.why
    assert marked.why.startswith("src in ipset ztunnel-pods-ips; ip rule 0 (lookup local) comes first")
    route = next(s for s in answer if s.matched.startswith("routing:"))
    assert route.matched.startswith("routing: ip rule 0 (from all lookup local) → node table local: local 10.244.2.1")
    assert route.why.startswith("ip rule 0 (lookup local) comes first")


def test_a_route_from_the_local_table_is_told_as_ip_rule_0s_and_tables_carry_their_host() -> None:
    for name in ("same-node-vip", "borrowed-source", "kubelet", "inbound-remote"):
        frame = walk(CAPTURE, name)
        for label in frame["packet"].drop_duplicates():
            for s in steps(frame, label):
                matched = s.matched.removeprefix("outer packet: ")
                if "table local:" in matched:
                    assert matched.startswith("routing: ip rule 0 (from all lookup local) → "), s.matched
                if matched.startswith("routing:") and " table " in matched:
                    assert f"→ {s.host} table " in s.matched, s.matched


def test_a_socket_sent_packet_starts_with_its_headers_and_the_first_crossing_warns() -> None:
    found = steps(walk(CAPTURE, "borrowed-source"), 1)
    assert found[0].matched == "a socket sends `10.244.1.9:45000 > 10.244.2.5:9080 tcp [S]`"
    assert found[0].changed == "socket mark 0x4d2"
    crossing = next(s for s in found if s.matched.startswith("leaves by veth"))
    assert "the rules and routing tables are node's own: a table or rule number now names node's, " \
        "not ztunnel's" in crossing.why
    told = steps(walk(CAPTURE, "same-node-vip"), 1)
    assert sum("from here on" in s.why for s in told) == 1


def test_who_connects_labels_a_stand_in_walk_as_the_labs_simplification() -> None:
    frames = {"lab": walk(CAPTURE, "borrowed-source"), "same": walk(CAPTURE, "same-node-vip")}
    table = who_connects(frames, stand_ins={"lab"})
    onward = table[table["downstream peer"] != ""]
    assert onward.loc["lab", "basis"].tolist() == [STAND_IN]
    assert onward.loc["same", "basis"].str.startswith("derived (2022 code)").all()


def test_the_steps_between_a_tunnels_wrapping_and_unwrapping_are_the_outer_packets() -> None:
    told = steps(walk(CAPTURE, "same-node-vip"), 1)
    wrapped = next(k for k, s in enumerate(told) if s.matched.startswith("enters tunnel"))
    unwrapped = next(k for k, s in enumerate(told) if s.changed.startswith("unwrapped"))
    assert all(s.matched.startswith("outer packet: ") for s in told[wrapped + 1:unwrapped + 1])
    assert not any(s.matched.startswith("outer packet: ") for s in told[:wrapped + 1] + told[unwrapped + 1:])


def test_a_nat_step_says_what_the_packet_becomes() -> None:
    told = [s for s in steps(walk(CAPTURE, "service-outside-mesh-remote"), 1) if "-j DNAT" in s.matched]
    assert told and told[0].changed.endswith("the packet is `10.244.2.4:41000 > 10.244.1.23:9080 tcp [S]`")
    masq = [s for s in steps(walk(CAPTURE, "service-from-node"), 1) if "-j MASQUERADE" in s.matched]
    assert masq and masq[0].changed == "the connection is translated, but this packet's addresses and ports stay as they were"
