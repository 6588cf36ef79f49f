"""Today's in-pod rules (REDIRECT, Istio 1.24+): the reconstructed capture, conntrack zones in
the tracer, the redirect-* walks, and telling the three designs apart from iptables-save."""

from __future__ import annotations

import pytest

from ambientlab import load_capture
from ambientlab.core.constants import INPOD, INPOD_REDIRECT
from ambientlab.core.redirection import (
    IN_POD,
    IN_POD_REDIRECT,
    IN_POD_UNKNOWN,
    NODE_LEVEL,
    NONE,
    capture_rules,
    classify,
)
from ambientlab.core.trace.netfilter import Packet, Ruleset, UnsupportedRule
from ambientlab.core.trace.walks import walk
from ambientlab.live.reconstruct_inpod import REDIRECT_POD_RULES

TODAY = load_capture(INPOD_REDIRECT)


def _ends(scenario: str) -> dict[str, str]:
    hops = walk(TODAY, scenario)
    last = hops.groupby("packet", sort=False).tail(1)
    return {p.split()[0]: f"{h}: {m}" for p, h, m in zip(last["packet"], last["host"], last["matched"], strict=True)}


def test_the_pod_rules_are_upstreams_as_iptables_save_prints_them() -> None:
    printed = TODAY.text("reviews-v1/iptables-save.txt")
    rules = [ln for ln in REDIRECT_POD_RULES.splitlines() if ln.startswith("-A ")]
    assert len(rules) == 18 and all(f"\n{ln}\n" in printed for ln in rules)
    assert "-j TPROXY" not in printed and "*raw\n" in printed
    assert "--match-set istio-inpod-probes-v4 dst -j SNAT --to-source 169.254.7.127" in TODAY.text("node/iptables-save.txt")
    manifest = (TODAY.root / "manifest.yaml").read_text()
    assert "d9c34622bf0968848d241c148c06af7af49ea483" in manifest and "origin: \"reconstructed\"" in manifest


RAW = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p udp -m mark --mark 0x539/0xfff -m udp --dport 53 -j CT --zone 1
COMMIT
"""


def test_ct_zone_sets_the_zone_of_an_untracked_packet_only() -> None:
    rules = Ruleset(RAW, "raw")
    marked = Packet(src=1, dst=2, proto=17, sport=5, dport=53, mark=0x539)
    verdict = rules.run("OUTPUT", marked, False)
    assert verdict.action == "ACCEPT" and marked.zone == 1 and verdict.hits[0].target == "CT"
    plain = Packet(src=1, dst=2, proto=17, sport=5, dport=53)
    rules.run("OUTPUT", plain, False)
    assert plain.zone == 0


def test_ct_outside_raw_or_without_zone_is_refused() -> None:
    with pytest.raises(UnsupportedRule, match="raw only"):
        Ruleset(RAW.replace("*raw", "*mangle"), "m").run("OUTPUT", Packet(1, 2, 17, 5, 53, mark=0x539), False)
    with pytest.raises(UnsupportedRule, match="only --zone"):
        Ruleset(RAW.replace("--zone 1", "--notrack"), "n").run("OUTPUT", Packet(1, 2, 17, 5, 53, mark=0x539), False)


def test_the_same_tuple_in_two_zones_is_two_connections() -> None:
    frame = walk(TODAY, "redirect-dns-port-reuse")
    assert _ends("redirect-dns-port-reuse") == {"1": "productpage-v1: socket ztunnel 15053 (DNS proxy)",
                                                "2": "node: leaves for the rest of the cluster (eth0)"}
    second = frame[frame["packet"].str.startswith("2 ")]
    assert "-j CT --zone 1" in second["matched"].tolist()[3]
    assert not second["matched"].str.contains("REDIRECT").any()  # not the app's REDIRECTed connection


def test_outbound_inbound_and_hbone() -> None:
    ends = _ends("redirect-outbound")
    assert ends["1"] == ("productpage-v1: socket ztunnel 15001 (outbound); SO_ORIGINAL_DST gives it 10.244.1.5:9080, "
                         "the destination before REDIRECT (read from conntrack)")
    assert ends["2"] == "node: leaves for the rest of the cluster (eth0)"
    plain = walk(TODAY, "redirect-inbound-plaintext")
    assert "-j REDIRECT --to-ports 15006" in plain["matched"].iloc[9] and plain["where"].iloc[9] == "nat ISTIO_PRERT"
    assert _ends("redirect-inbound-plaintext")["3"] == "reviews-v1: socket ztunnel to the app (client's address)"
    hbone = walk(TODAY, "redirect-inbound-hbone")
    first = hbone[hbone["packet"].str.startswith("1 ")]
    assert not first["matched"].str.contains("REDIRECT|TPROXY").any()
    assert first["matched"].iloc[-1] == "socket ztunnel 15008 (inbound HBONE)"


def test_dns_and_the_probe() -> None:
    assert _ends("redirect-dns") == {
        "1": "productpage-v1: socket ztunnel 15053 (DNS proxy)",
        "2": "node: leaves for the rest of the cluster (eth0)",
        "3": "productpage-v1: socket ztunnel's query to kube-dns",
        "4": "productpage-v1: socket app's resolver",
    }
    answer = walk(TODAY, "redirect-dns")
    assert answer["headers"].iloc[-1].startswith("10.96.0.10:53 > 10.244.2.3:53000 udp")
    probe = walk(TODAY, "redirect-probe")
    assert "nat ISTIO_PRERT" in probe["where"].tolist() and "mangle ISTIO_PRERT" not in probe["where"].tolist()


def test_a_walk_refuses_a_capture_of_the_other_in_pod_design() -> None:
    with pytest.raises(ValueError, match=r"holds 1\.22 in-pod rules"):
        walk(load_capture(INPOD), "redirect-dns")
    with pytest.raises(ValueError, match=r"holds 1\.24\+ in-pod REDIRECT rules"):
        walk(TODAY, "inpod-inbound")


@pytest.mark.parametrize(("name", "design"), [("kind-2022-ambient-worker2", NODE_LEVEL), (INPOD, IN_POD),
                                              (INPOD_REDIRECT, IN_POD_REDIRECT), ("kind-2022-kebe", NONE)])
def test_classify_tells_the_three_designs_apart(name: str, design: str) -> None:
    found = classify(capture_rules(load_capture(name)))
    assert found.design == design
    assert found.sentence().startswith("this cluster runs" if design != NONE else "no ambient redirection")


def test_the_node_alone_does_not_tell_tproxy_from_redirect() -> None:
    for capture in (load_capture(INPOD), TODAY):
        found = classify({"node/iptables-save.txt": capture.text("node/iptables-save.txt")})
        assert found.design == IN_POD_UNKNOWN and "ISTIO_POSTRT" in found.evidence


def test_three_designs_side_by_side_and_what_changed() -> None:
    from ambientlab.core.trace.designs import JOBS, changes, compare_designs

    table = compare_designs(load_capture("kind-2022-ambient-worker2"), load_capture(INPOD), TODAY)
    assert len(table) == 3 * len(JOBS)
    hbone = table.loc["HBONE from another node reaches ztunnel's 15008"]
    assert hbone.loc[IN_POD, "targets"] == "nat KUBE-SERVICES, mangle TPROXY"
    assert hbone.loc[IN_POD_REDIRECT, "targets"] == "nat KUBE-SERVICES" and hbone.loc[IN_POD_REDIRECT, "marks set"] == "none"
    changed = changes(table)
    assert ("an app's outbound SYN reaches ztunnel", "ends at") not in changed.index  # outbound did not change
    assert changed.loc[("the kubelet's probe reaches the app", "targets"), IN_POD_REDIRECT] == "nat SNAT, nat ACCEPT"
    assert set(changed.index.get_level_values("what")) == {"rules that act", "targets", "marks set"}


def test_lab_up_chooses_the_in_pod_rules_and_refuses_a_mismatch() -> None:
    from ambientlab.live.lab.runtime import INPOD_RULES, LabError, up

    assert INPOD_RULES == {"1.22": INPOD, "redirect": INPOD_REDIRECT}
    with pytest.raises(LabError, match="--design inpod"):
        up(design="2022", inpod_rules="redirect")
    with pytest.raises(LabError, match=r"holds 1\.22 in-pod rules, not the redirect ones"):
        up(design="inpod", inpod_rules="redirect", capture=INPOD)
    with pytest.raises(LabError, match="holds no in-pod rules of a pod"):
        up(design="inpod", capture="kind-2022-ambient-worker2")
    with pytest.raises(LabError, match="not in"):
        up(design="inpod", inpod_rules="1.99")
