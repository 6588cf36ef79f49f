"""Every exercise's self-check against an answer written here by hand, not by solution().

Each EXPECTED answer was derived by reading the capture's files (paths under data/), in the form a
reader would type it. If the tracer and a literal here disagree, one of them is wrong: find out
which, do not copy the tracer's answer over. Each exercise also has two plausible wrong answers:
the first must get hint 1, the second hint 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ambientlab.book.check import EXERCISES, answer, forget_tries, hint, solution, tries

W2 = "data/kind-2022-ambient-worker2"

# exercise: (the right answer, two plausible wrong ones)
EXPECTED: dict[str, tuple[Any, Any, Any]] = {
    # kind-2022-kebe/cluster/kubectl-get-pods-o-wide.txt: on ambient-worker2, details-v1 10.244.1.9, productpage
    # .7, ratings .8, reviews .4 .5 .6; node/ipset-list.txt holds .4 .5 .6 .7 .8.
    "01-pod-outside-set": ("10.244.1.9", "10.244.1.7", "10.244.2.4"),
    # W2/node/ip-rule.txt: 0 local (10.244.2.5 is not local), then 100 `fwmark 0x200/0x200 goto 32766`:
    # 0x300 & 0x200 == 0x200, so 100 matches first and 32766 looks up main (10.244.2.5 dev vethreviewsv2).
    # The book's convention (fix-shared): the goto rule decides, "ip rule 100 (goto 32766) → table main".
    "01-rule-for-0x300": ("ip rule 100 (goto 32766), table main", "ip rule 101, table 101", (103, 100)),
    # Not the primer's printed example (0x210 with 0x40/0x40 -> 0x250, then 0x220/0xffffffff -> 0x220):
    # (0x220 & ~0x30) ^ 0x10 = 0x200 ^ 0x10 = 0x210; (0x250 & ~0xffffffff) ^ 0x100 = 0 ^ 0x100 = 0x100.
    "02-xmark": ("0x210", "0x230", 0x10),
    "02-xmark-full": (0x100, "0x350", 0x250),
    # W2/node/ipset-list.txt: "Number of entries: 5", five lines under Members.
    "03-members": (5, 6, "4"),
    # W2/node/iptables-save.txt mangle ztunnel-PREROUTING: rules 1-14 do not match TCP from vethproductpage with
    # no mark; 15 `-p tcp -m set --match-set ztunnel-pods-ips src` (10.244.2.3 is a member) sets 0x100. ip rule
    # 101 -> table 101 `default via 192.168.127.2 dev istioout`; the geneve packet (istioout: id 1001, remote
    # 10.244.2.10) reaches ztunnel's eth0, comes out of pistioout (id 1001, remote 10.244.2.1), and
    # W2/ztunnel/iptables-save.txt `-i pistioout -p tcp -j TPROXY --on-port 15001`.
    "03-walk-egress": ("ztunnel 15001", "eth0", "ztunnel 15006"),
    # ratings (10.244.2.2) out of the set, TCP SYN from vethratings to 10.96.183.192:9080, no connmark: PRE-1-4
    # need -i istioin/istioout, PRE-5 and PRE-13 udp, PRE-6/8 a connmark, PRE-10/12 -i veth6cc9a213, PRE-15 a
    # source in the set: no MARK rule matches, the mark stays 0x0.
    "04-syn-mark": ("0x0", "0x100", 0x220),
    # ztunnel (10.244.2.10) dials ratings 10.244.2.2:9080 from its own address: its SYN comes in by veth6cc9a213,
    # PRE-10 excludes -s 10.244.2.10, PRE-12 sets 0x220, FWD-1 saves connmark 0x220. ratings' SYN-ACK (TCP from
    # a member of the set) on vethratings: PRE-6 `-m connmark --mark 0x220/0x220 -j MARK --set-xmark 0x200/0x200`,
    # PRE-7 returns before PRE-15: 0x200.
    "04-reply-mark": (0x200, "0x100", "0x220"),
    # UDP from vethproductpage to 10.244.0.2:53: PRE-13 `-p udp -j MARK --set-xmark 0x220/0x220`, PRE-14 returns;
    # ip rule 100 (0x220 & 0x200) goto 32766 -> main `10.244.0.0/24 via 172.18.0.3 dev eth0`.
    # The goto rule decides (fix-shared): 100, not 32766.
    "04-walk-dns": ("ip rule 100, table main", "ip rule 101, table 101", "ip rule 103, table 100"),
    # W2/node/ip-route-table-101.txt: `10.244.2.10 dev veth6cc9a213 scope link` is longer than default.
    "05-outer-device": ("veth6cc9a213", "istioout", "eth0"),
    # productpage -> 10.244.2.5: PRE-15 sets 0x100; ip rule 101 matches before 103 (whose table 100 has the /32).
    "05-walk-pod-ip": ("ip rule 101, table 101", "ip rule 103, table 100", "32766 main"),
    # ztunnel's SYN-ACK comes out of istioout: PRE-3 `-i istioout -j MARK --set-xmark 0x200/0x200`, PRE-4 returns.
    # Without ip rule 100: 101 (0x100) and 102 (0x40) do not match 0x200; 103 -> table 100
    # `10.244.2.3 via 192.168.126.2 dev istioin src 10.244.2.1`.
    "05-walk-no-rule-100": ((103, 100), "ip rule 100, table main", "32766 main"),
    # W2/node/ip-d-link-istioout.txt: `geneve id 1001`.
    "06-vni-istioout": (1001, 1000, "0x3e8"),
    # ratings (10.244.2.2, in the set) -> VIP: enters by vethratings (main: `10.244.2.2 dev vethratings`), 0x100,
    # table 101 -> istioout; outer to 10.244.2.10: table 101 `10.244.2.10 dev veth6cc9a213`, OUTPUT marks it 0x220
    # (-s 10.244.2.1) and main sends it by the same veth; ztunnel's eth0; geneve id 1001 from 10.244.2.1 = pistioout.
    "06-walk-ratings-vip": ("vethratings -> istioout -> veth6cc9a213 -> eth0 -> pistioout",
                            "vethratings, istioout, pistioout", ["vethratings", "istioin", "veth6cc9a213"]),
    # W2/ztunnel/ip-rule.txt: `20003: from all fwmark 0x4d3/0xfff lookup 100`.
    "07-rule-0x4d3": (20003, 20000, "101"),
    # SYN from 10.244.1.9 (assumed; not in the set) on eth0 to 10.244.2.3:9080: no PRE rule matches (PRE-10/12 need
    # -i veth6cc9a213, PRE-13 udp, PRE-15 the set); ip rule 103 -> table 100 -> istioin (id 1000); in ztunnel it
    # comes out of pistioin (id 1000); `-i pistioin -p tcp --dport 15008` does not match 9080, then
    # `-i pistioin -p tcp -j TPROXY --on-port 15006`.
    "07-walk-details": ("ztunnel:15006", "pod productpage-v1", "ztunnel 15008"),
    # ztunnel's socket mark 0x401: W2/ztunnel/ip-rule.txt 20001 (0x401/0xfff) -> table 101
    # `default via 192.168.127.1 dev pistioout`; outer to 10.244.2.1 (pistioout: remote 10.244.2.1): table 101
    # `10.244.2.1 dev eth0 scope link`; the node receives it on veth6cc9a213 (PRE-5 returns UDP 6081), delivers
    # it locally and decapsulates it on istioout (id 1001); PRE-3 sets 0x200; ip rule 100 -> main -> vethratings.
    "08-walk-synack-ratings": ("pistioout eth0 veth6cc9a213 istioout vethratings",
                               "pistioout, eth0, veth6cc9a213, vethratings", "istioout vethratings"),
    # HBONE SYN from eth0 with no mark: ip rule 103 -> table 100.
    "09-inbound-table": (100, "101", "main"),
    # ztunnel's HBONE SYN (10.244.2.10 -> 10.244.1.23:15008) on veth6cc9a213: PRE-10 excludes -s 10.244.2.10,
    # PRE-12 `-i veth6cc9a213` sets 0x220, PRE-14 returns. Without 100: 101, 102 do not match 0x220; 103 -> table
    # 100 has only 10.244.2.x /32s, so the lookup goes on to 32766 -> main `10.244.1.0/24 via 172.18.0.4 dev eth0`.
    # 32766 is now the rule that sends the packet to a table with a route, so it decides (with ip rule 100 it was
    # "ip rule 100 (goto 32766) → table main", as in 04-walk-dns: the same route, another deciding rule).
    "09-walk-no-rule-100": ("ip rule 32766, table main", "ip rule 103, table 100", "103 main"),
    # details-v1 (10.244.1.9, assumed: outside the mesh, on ambient-worker) calls reviews-v3 in plain TCP; ztunnel
    # dials 10.244.2.8:9080 from 10.244.1.9:45000 (borrowed address, its own port): the SYN comes in by
    # veth6cc9a213 with a source that is not 10.244.2.10, PRE-10 `! -s 10.244.2.10/32 -i veth6cc9a213` sets 0x210;
    # ztunnel-FORWARD `--mark 0x210/0x210 -j CONNMARK --save-mark --nfmask 0x210 --ctmask 0x210`.
    "10-connmark": ("0x210", "0x220", 0x40),
    # reviews-v3's SYN-ACK to 10.244.1.9:45000 (the connection ztunnel opened as 10.244.1.9, ctmark 0x210): on
    # vethreviewsv3, PRE-6 (connmark 0x220/0x220) does not match 0x210; PRE-8 `! -i veth6cc9a213 -m connmark
    # --mark 0x210/0x210 -j MARK --set-xmark 0x40/0x40`, PRE-9 returns; ip rule 102 -> table 102
    # `default via 10.244.2.10 dev veth6cc9a213 onlink`.
    "10-walk-reply-v3": ("ip rule 102, table 102", "ip rule 101, table 101", "ip rule 100, table main"),
    # Chapter 11's outcome tables: removing ip rule 102 strands only the replies of connections from elsewhere.
    "11-only-remote": ("node-ip-rule-102", "node-mark-0x210", "ztunnel-mark-0x4d3"),
    # The on-node connection without the 0x4d3 rule: packets 1 and 2 (SYN, SYN-ACK) still end where they did;
    # packet 3 (productpage's ACK, which arrives on ztunnel's eth0 for 10.244.2.7) is the first lost.
    "11-lost-without-0x4d3": (3, 2, "1"),
    # HBONE SYN from 10.244.1.19 on eth0 to 10.244.2.5:15008, no mark; without 103, 32766 -> main
    # `10.244.2.5 dev vethreviewsv2 scope host`.
    "11-walk-no-rule-103": ("pod reviews-v2", "ztunnel 15008", "eth0"),
    # kind-2022-kebe/node/ip-route-table-101.txt: `10.244.1.2 dev veth5db63c11 scope link`.
    "12-kebe-ztunnel": ("10.244.1.2", "10.244.2.3", "10.244.1.1"),
    # kind-2022-kebe/node/ip-addr-istioout-excerpt.txt: `mtu 1450`.
    "12-kebe-mtu": (1450, 1500, "1400"),
    # lab-2026-11-ambient-worker2/ztunnel/ip-rule.txt: 0x4d2 & 0xfff matches none of 0x400, 0x401, 0x402, 0x4d3
    # -> 32766 main (the lab keeps reviews-v1 at 10.244.2.7, the layout of the recorded node files).
    "13-onward-table": ("main", "100", "101"),
    # lab-2026-11-ambient-worker2/session/breaks-no-marks.jsonl: the one ConnectionResetError row.
    "13-reset-piece": ("node-mark-0x210", "node-ip-rule-102", "ztunnel-ip-rule-20000"),
    # kind-2022-ambient-worker/node/ip-rule.txt: no mark -> 103 -> table 100 (10.244.1.23 via istioin).
    "14-far-table": ("100", "main", "101"),
    # lab-2026-11-hbone/session/worker-ztunnel-marks-2022.log: onward "10.244.2.10:32883 -> 10.244.1.23:9080".
    "14-far-source": ("10.244.2.10", "10.244.1.19", "10.244.2.3"),
    # inpod-1.22-ambient-worker2/reviews-v1/iptables-save.txt: ISTIO_OUTPUT `-m connmark --mark 0x111/0xfff -j
    # CONNMARK --restore-mark`: the connmark set by ISTIO_PRERT `--set-xmark 0x111/0xfff`.
    "15-return-mark": ("0x111", "0x539", "0x210"),
    # inpod-1.22-ambient-worker2/node/iptables-save.txt: ISTIO_POSTRT `-j SNAT --to-source 169.254.7.127`.
    "15-probe-source": ("169.254.7.127", "10.244.2.1", "127.0.0.1"),
    # inpod-1.22-ambient-worker2/productpage-v1/iptables-save.txt: nat ISTIO_OUTPUT's REDIRECT is `-p tcp` only,
    # so UDP leaves by the pod's eth0 (its main: default via 10.244.2.1 dev eth0), enters the node by
    # vethproductpage (node main: `10.244.2.3 dev vethproductpage`) and leaves by node/ip-route-table-main.txt
    # `10.244.0.0/24 via 172.18.0.3 dev eth0`.
    # Two devices are called eth0 (productpage's and the node's): the answer names their namespaces.
    "15-walk-inpod-dns": ("productpage-v1/eth0, node/vethproductpage, node/eth0", "lo", "eth0 vethproductpage"),
}


@pytest.fixture(autouse=True)
def _fresh_tries() -> Iterator[None]:
    forget_tries()
    yield
    forget_tries()


def test_every_exercise_has_an_independent_answer() -> None:
    assert sorted(EXPECTED) == sorted(EXERCISES)


def test_at_least_eight_exercises_predict_a_walk() -> None:
    walks = [e for e, spec in EXERCISES.items() if spec.kind in ("devices", "decision", "ending")]
    assert len(walks) >= 8, walks


@pytest.mark.parametrize("exercise", sorted(EXPECTED))
def test_the_right_answer_passes_and_wrong_ones_get_the_hints_in_turn(exercise: str) -> None:
    right, first, second = EXPECTED[exercise]
    assert answer(exercise, right) == "Correct."
    assert tries(exercise) == 0
    one = answer(exercise, first)
    assert one.startswith("Not yet. ") and hint(exercise, 1) in one
    two = answer(exercise, second)
    assert hint(exercise, 2) in two and hint(exercise, 1) not in two
    assert tries(exercise) == 2
    assert len(EXERCISES[exercise].hints) >= 2
    if EXERCISES[exercise].kind != "value":
        assert len(EXERCISES[exercise].hints) >= 3, "a walk gets three hints: gentle, closer, nearly the answer"


def test_the_last_hint_stays_the_last() -> None:
    for _ in range(5):
        said = answer("05-walk-pod-ip", "ip rule 32766, table main")
    assert hint("05-walk-pod-ip", 3) in said and "More:" not in said
    with pytest.raises(ValueError, match="hints 1 to 3"):
        hint("05-walk-pod-ip", 4)


def test_forgetting_tries_starts_the_hints_again() -> None:
    answer("04-walk-dns", "ip rule 101, table 101")
    answer("04-walk-dns", "ip rule 101, table 101")
    forget_tries("04-walk-dns")
    assert hint("04-walk-dns", 1) in answer("04-walk-dns", "ip rule 103, table 100")


@pytest.mark.parametrize("given", [
    "vethratings -> istioout -> veth6cc9a213 -> eth0 -> pistioout",
    "VethRatings → istioout → veth6cc9a213 → ztunnel/eth0 → pistioout",
    "vethratings,istioout,veth6cc9a213,eth0,pistioout",
    "vethratings istioout veth6cc9a213 ztunnel:eth0 pistioout",
    ["vethratings", "istioout", "veth6cc9a213", "eth0", "pistioout"],
    ("vethratings", "istioout", "veth6cc9a213", "eth0", "pistioout"),
])
def test_device_lists_are_accepted_in_many_forms(given: Any) -> None:
    assert answer("06-walk-ratings-vip", given) == "Correct."


@pytest.mark.parametrize("given", ["ip rule 100, table main", "ip rule 100 (goto 32766) → table main", (100, "main"),
                                   "100 goto 32766 main"])
def test_a_goto_rule_is_the_deciding_rule(given: Any) -> None:
    assert answer("04-walk-dns", given) == "Correct."
    said = answer("04-walk-dns", "ip rule 32766, table main")
    assert "the book counts the rule that matched the packet and sent it there with its goto" in said


def test_a_name_several_namespaces_have_needs_its_namespace() -> None:
    for given in ("productpage-v1/eth0 -> node/vethproductpage -> node/eth0",
                  "productpage:eth0, vethproductpage, node:eth0"):
        assert answer("15-walk-inpod-dns", given) == "Correct."
    said = answer("15-walk-inpod-dns", "eth0, vethproductpage, eth0")
    assert "eth0 names devices of more than one network namespace" in said and "Hint" not in said
    assert "a namespace is not" in answer("15-walk-inpod-dns", "ztunnel/eth0, vethproductpage, node/eth0")
    assert tries("15-walk-inpod-dns") == 0
    assert answer("06-walk-ratings-vip", "vethratings istioout veth6cc9a213 eth0 pistioout") == "Correct."


def test_no_answer_yet_gets_the_first_hint_and_is_not_a_try() -> None:
    for placeholder in (None, ...):
        said = answer("04-walk-dns", placeholder)
        assert said.startswith("No answer yet") and hint("04-walk-dns", 1) in said
    assert tries("04-walk-dns") == 0


@pytest.mark.parametrize("given", ["ip rule 101, table 101", "101/101", (101, 101), (101, "101"), [101, "101"],
                                   "IP RULE 101 -> TABLE 101", "rule 0x65 table 101"])
def test_decisions_are_accepted_in_many_forms(given: Any) -> None:
    assert answer("05-walk-pod-ip", given) == "Correct."


@pytest.mark.parametrize("given", ["ztunnel 15001", "ztunnel:15001", "15001", "Ztunnel port 15001",
                                   "the ztunnel listener on 15001"])
def test_endings_are_accepted_in_many_forms(given: Any) -> None:
    assert answer("03-walk-egress", given) == "Correct."


def test_hex_and_decimal_answers_are_the_same_number() -> None:
    assert answer("02-xmark", "0x210") == answer("02-xmark", 528) == "Correct."


def test_a_wrong_walk_is_told_what_it_has_right() -> None:
    assert "Your first 2 devices are right." in answer("06-walk-ratings-vip", "vethratings istioout eth0")
    assert "but the packet crosses more" in answer("06-walk-ratings-vip", "vethratings istioout")
    assert "The packet stops after your first 5 devices." in answer(
        "06-walk-ratings-vip", "vethratings istioout veth6cc9a213 eth0 pistioout lo")
    assert "The ip rule is right, the table is not." in answer("05-walk-pod-ip", "ip rule 101, table 100")
    assert "The table is right, the ip rule is not." in answer("04-walk-dns", "ip rule 102, table main")


def test_an_expected_wrong_answer_is_told_what_it_overlooks() -> None:
    said = answer("05-walk-pod-ip", "ip rule 103, table 100")
    assert "Table 100 does have a /32 route for 10.244.2.5" in said and "Hint 1 of 3" in said
    said = answer("09-walk-no-rule-100", "103 100")
    assert "table 100 has no route for 10.244.1.23" in said


def test_a_decision_prints_the_goto_rule_as_the_deciding_one() -> None:
    """W2/node/ip-rule.txt: 100 `fwmark 0x200/0x200 goto 32766` matches UDP's 0x220 (04-walk-dns); without it,
    ip rule 32766 itself decides (09-walk-no-rule-100). Both unpack and compare as plain pairs."""
    assert str(solution("04-walk-dns")) == "ip rule 100 (goto 32766) → table main"
    assert solution("04-walk-dns") == (100, "main")
    assert str(solution("09-walk-no-rule-100")) == "ip rule 32766 → table main"
    rule, table = solution("10-walk-reply-v3")
    assert (rule, table) == (102, "102") and str(solution("10-walk-reply-v3")) == "ip rule 102 → table 102"
