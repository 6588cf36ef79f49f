"""The in-pod lab on the real kernel: Istio 1.22's rules in the pods' own namespaces, a
stand-in ztunnel inside each recorded pod, and what the tracer predicts for the same
connections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ambientlab import load_capture
from ambientlab.core.trace.walks import walk
from ambientlab.live.lab.runtime import Lab, namespaces_with_prefix, up
from ambientlab.live.lab.status import differences
from tests.kernel.labevents import accepted

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def lab(netns_ok: None) -> Iterator[Lab]:
    built = up(design="inpod")
    try:
        yield built
    finally:
        prefix = built.prefix
        built.down()
        assert namespaces_with_prefix(prefix) == []


def test_the_pods_print_the_inpod_capture(lab: Lab) -> None:
    found = differences(lab)
    assert "DIFFERENT" not in found.values(), found
    assert found["productpage-v1/ip-rule.txt"] == "same text"
    assert found["reviews-v1/ip-route-table-100.txt"] == "same text"
    assert lab.state["inpod"] == ["productpage-v1", "reviews-v1"] and not lab.state["ztunnels"]


def test_a_connection_is_captured_on_15001_inside_the_client_pod(lab: Lab) -> None:
    near, far = len(lab.events("ztunnel-productpage-v1")), len(lab.events("ztunnel-reviews-v1"))
    greeting = lab.connect("productpage-v1", "reviews-v1", sport=40999)
    [out] = accepted(lab, "ztunnel-productpage-v1", near)
    [into] = accepted(lab, "ztunnel-reviews-v1", far)
    # what the tracer predicts for the same connection, from the in-pod capture
    ends = walk(load_capture("inpod-1.22-ambient-worker2"), "inpod-same-node").groupby(
        "packet", sort=False).tail(1).set_index("packet")["matched"].tolist()
    assert ends[0] == f"socket ztunnel {out['listener']} (outbound)" and out["peer"] == "10.244.2.3:40999"
    assert out["original_dst"] == "10.244.2.7:9080" and out["onward_mark"] == "0x539"
    assert ends[1] == f"socket ztunnel {into['listener']} (inbound plaintext)"
    assert str(into["peer"]).startswith("10.244.2.3:") and str(into["onward"]).startswith("10.244.2.3:")
    assert greeting.startswith("hello from reviews-v1 (10.244.2.7:9080); you are 10.244.2.3:")
    assert ends[3] == "socket ztunnel to the app (client's address)"


def test_a_pod_without_the_rules_is_not_captured_outbound(lab: Lab) -> None:
    before = len(lab.events("ztunnel-reviews-v1"))
    greeting = lab.connect("ratings-v1", "reviews-v1")
    assert greeting.startswith("hello from reviews-v1") and greeting.split("you are ")[1].startswith("10.244.2.2:")
    [into] = accepted(lab, "ztunnel-reviews-v1", before)
    assert into["listener"] == 15006  # captured on arrival only: ratings-v1 has no rules of its own
    assert lab.connect("reviews-v1", "ratings-v1").startswith("hello from ratings-v1")


def test_the_kernel_restores_0x111_on_the_apps_ack_as_the_tracer_does(lab: Lab) -> None:
    from ambientlab.core.trace.nftrace import kernel_segments
    from ambientlab.live.lab.nftrace import run_traced
    from tests.test_inpod import _app_to_ztunnel_handshake

    _, texts = run_traced(lab, lambda: lab.connect("productpage-v1", "reviews-v1", sport=41234), (9080, 15001),
                          ("productpage-v1",))
    segments = kernel_segments(texts)["productpage-v1"]
    ack = next(s for s in segments if s.key == "tcp 10.244.2.3:41234 > 10.244.2.7:9080 [A]")
    kernel_output = next(h for h in ack.hooks if h[0] == "OUTPUT")
    predicted = _app_to_ztunnel_handshake()
    tracer_output = predicted[(predicted["packet"] == "3 ACK") & (predicted["hook"] == "OUTPUT")]
    assert kernel_output[3] == tracer_output["mark_after"].iloc[-1] == "0x111"


def test_lab_trace_of_the_outbound_walk_agrees_hook_by_hook(lab: Lab) -> None:
    from ambientlab.core.trace.nftrace import compare, kernel_segments
    from ambientlab.live.lab.nftrace import trace_inpod_walk

    _, texts, frame = trace_inpod_walk(lab, "inpod-outbound")
    table = compare(frame, kernel_segments(texts, lab.prefix))
    assert table["agree"].all() and table["hook"].tolist() == ["OUTPUT", "PREROUTING"], table.to_string()
