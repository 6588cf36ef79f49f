"""The in-pod lab with today's rules (`lab up --design inpod --rules redirect`): the lab prints
the capture inpod-redirect-ambient-worker2, its stand-in ztunnels read 15006's original
destination as REDIRECT requires, and `lab trace --walk` agrees with the tracer hook by hook, for
today's rules and for 1.22's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ambientlab.cli.main import main
from ambientlab.core.constants import INPOD_REDIRECT
from ambientlab.live.lab.nftrace import trace_inpod_walk
from ambientlab.live.lab.runtime import Lab, LabError, namespaces_with_prefix, up
from ambientlab.live.lab.status import differences
from tests.kernel.labevents import accepted

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def lab(netns_ok: None) -> Iterator[Lab]:
    built = up(design="inpod", inpod_rules="redirect")
    try:
        yield built
    finally:
        prefix = built.prefix
        built.down()
        assert namespaces_with_prefix(prefix) == []


def test_the_lab_prints_todays_capture(lab: Lab) -> None:
    found = differences(lab)
    assert "DIFFERENT" not in found.values(), found
    assert found["reviews-v1/iptables-save.txt"] == "same text"  # the raw table and nat ISTIO_PRERT included
    assert lab.state["capture"] == INPOD_REDIRECT and lab.state["behaviour"] == "inpod-redirect"


def test_15006_takes_the_redirected_connection_and_reads_its_original_destination(lab: Lab) -> None:
    before = len(lab.events("ztunnel-reviews-v1"))
    greeting = lab.connect("ratings-v1", "reviews-v1", sport=41777)
    [into] = accepted(lab, "ztunnel-reviews-v1", before)
    assert into["listener"] == 15006 and into["original_dst"] == "10.244.2.7:9080"
    assert into["peer"] == "10.244.2.2:41777" and str(into["onward"]).startswith("10.244.2.2:")
    assert greeting.startswith("hello from reviews-v1 (10.244.2.7:9080); you are 10.244.2.2:")


def test_lab_trace_agrees_with_the_walk_hook_by_hook(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "trace", "--walk", "redirect-outbound", "--prefix", lab.prefix]) == 0
    said = capsys.readouterr().out
    assert "2 of 2 hooks agree (device and mark) between the kernel and the tracer" in said
    # the SYN before the REDIRECT (out by eth0), and after it, received again on lo for 15001
    assert "tcp 10.244.2.3:40000 > 10.244.1.5:9080 [S]     OUTPUT" in said
    assert "tcp 10.244.2.3:40000 > 127.0.0.1:15001 [S] PREROUTING         lo" in said
    with pytest.raises(LabError, match=r"holds 1\.24"):
        trace_inpod_walk(lab, "inpod-outbound")
