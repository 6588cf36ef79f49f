"""The live lab on the real kernel: built from the capture, real connections through the
stand-in ztunnel, traces against the tracer, break-it cases, recording. (Two labs at once, a failed
build and the command line: test_lab_lifecycle_kernel.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ambientlab import load_capture
from ambientlab.core.trace import host_from_capture
from ambientlab.core.trace.batch import answer, parse_query, public
from ambientlab.core.trace.breaks import PIECES
from ambientlab.core.trace.nftrace import compare, kernel_segments
from ambientlab.core.trace.predict import predict
from ambientlab.live.lab.breaks import break_piece, restore
from ambientlab.live.lab.nftrace import connection_of, trace
from ambientlab.live.lab.record import record
from ambientlab.live.lab.runtime import Lab, LabError, up
from ambientlab.live.lab.status import differences

pytestmark = pytest.mark.kernel
BEHAVIOURS = ("marks-2022", "no-marks")


@pytest.fixture(scope="module", params=BEHAVIOURS)
def lab(request: pytest.FixtureRequest, netns_ok: None) -> Iterator[Lab]:
    """One lab per ztunnel behaviour, torn down at the end of the module."""
    built = up(behaviour=request.param)
    try:
        yield built
    finally:
        built.down()


def _events_since(lab: Lab, before: int) -> list[dict[str, object]]:
    return [e for e in lab.events("ztunnel")[before:] if e.get("event") == "accepted"]


def test_the_lab_prints_the_capture(lab: Lab) -> None:
    found = differences(lab)
    assert "DIFFERENT" not in found.values(), found
    for path in ("node/ip-rule.txt", "node/ip-route-table-100.txt", "node/ip-route-table-101.txt",
                 "node/ip-route-table-102.txt", "ztunnel/ip-rule.txt", "node/iptables-save.txt"):
        assert found[path] == "same text", path


def test_outbound_is_caught_on_15001_and_passed_on_with_the_borrowed_source(lab: Lab) -> None:
    before = len(lab.events("ztunnel"))
    greeting = lab.connect("productpage-v1", "reviews-v1", sport=40123)
    [event] = _events_since(lab, before)
    assert event["listener"] == 15001 and event["original_dst"] == "10.244.2.7:9080"
    assert event["peer"] == "10.244.2.3:40123"
    onward = str(event["onward"])
    assert onward.startswith("10.244.2.3:") and onward.endswith(" -> 10.244.2.7:9080")
    # reviews-v1 saw productpage's address (borrowed), and its reply came back to the client
    assert greeting == f"hello from reviews-v1 (10.244.2.7:9080); you are {onward.split(' -> ')[0]}"


def test_a_peer_node_client_enters_through_istioin_and_15006(lab: Lab) -> None:
    before = len(lab.events("ztunnel"))
    greeting = lab.connect("peer", "reviews-v1", sport=40124)
    [event] = _events_since(lab, before)
    assert (event["listener"], event["peer"], event["original_dst"]) == (15006, "10.244.1.19:40124", "10.244.2.7:9080")
    assert greeting.startswith("hello from reviews-v1 (10.244.2.7:9080); you are 10.244.1.19:")
    route = lab.run("node", "ip", "route", "get", "10.244.2.7", "from", "10.244.1.19", "iif", "eth0")
    assert "dev istioin table 100" in route


def test_a_pod_taken_out_of_the_ipset_is_not_captured_outbound(lab: Lab) -> None:
    lab.run("node", "ipset", "del", "ztunnel-pods-ips", "10.244.2.2")
    try:
        before = len(lab.events("ztunnel"))
        greeting = lab.connect("ratings-v1", "reviews-v1", sport=40125)
        [event] = _events_since(lab, before)
    finally:
        lab.run("node", "ipset", "add", "ztunnel-pods-ips", "10.244.2.2")
    assert event["listener"] == 15006, "not captured by 15001, but table 100 still sends it to 15006"
    assert greeting.startswith("hello from reviews-v1")


@pytest.mark.parametrize("source", ["productpage-v1", "peer"])
def test_the_kernel_trace_agrees_with_the_tracer(lab: Lab, source: str) -> None:
    output, texts, conn = trace(lab, source, "reviews-v1", sport=40130 + len(source))
    table = compare(predict(conn).hops, kernel_segments(texts, lab.prefix))
    assert output.startswith("hello from reviews-v1")
    assert len(table) > 30 and table["agree"].all(), table[~table["agree"]].to_string()


def test_each_break_gives_what_the_tracer_predicts(lab: Lab) -> None:
    """Each piece removed: the connection works or fails as the tracer predicts; with one
    behaviour, every hook the kernel traced up to the lost packet agrees with the tracer too."""
    saved = {h: (lab.run(h, "ip", "rule"), lab.run(h, "iptables-save", "-t", "mangle"),
                 lab.run(h, "ip", "route", "show", "table", "all")) for h in ("node", "ztunnel")}
    traced = lab.state["behaviour"] == "no-marks"
    failures = {}
    for n, piece in enumerate(PIECES):
        break_piece(lab, piece)
        with pytest.raises(LabError, match="already broken"):
            break_piece(lab, piece)
        for client in ("productpage-v1", "peer"):
            if traced:
                output, texts, conn = trace(lab, client, "reviews-v1", sport=42000 + 2 * n + len(client) % 2, timeout=0.9)
                predicted = predict(conn, piece)
                table = compare(predicted.until_lost(), kernel_segments(texts))
                if not (len(table) and table["agree"].all()):
                    failures[(piece, client, "hooks")] = table[~table["agree"]].to_string()
            else:
                output = lab.connect(client, "reviews-v1", timeout=0.6)
                predicted = predict(connection_of(lab, client, "reviews-v1", 41000, 42000), piece)
            if output.startswith("hello from") != predicted.works:
                failures[(piece, client)] = (output, predicted.works)
        assert restore(lab) == [piece]
    assert not failures, failures
    after = {h: (lab.run(h, "ip", "rule"), lab.run(h, "iptables-save", "-t", "mangle"),
                 lab.run(h, "ip", "route", "show", "table", "all")) for h in ("node", "ztunnel")}
    strip = re.compile(r"^#.*$|\[\d+:\d+\]", re.M)
    assert {h: (r, strip.sub("", m), t) for h, (r, m, t) in after.items()} == \
        {h: (r, strip.sub("", m), t) for h, (r, m, t) in saved.items()}
    assert lab.run("node", "sysctl", "-n", "net.ipv4.conf.all.rp_filter").strip() == "0"


def test_lab_record_writes_a_capture_the_tracer_reads(lab: Lab, tmp_path: Path) -> None:
    written = record(lab, tmp_path / "rec")
    capture = load_capture(tmp_path / "rec")
    capture.verify()
    assert {e["origin"] for e in capture.manifest["files"]} == {"lab"} and len(written) >= 20
    assert capture.manifest["lab"]["tunnel"] == lab.state["tunnel"]
    mine, theirs = host_from_capture(capture, "node"), host_from_capture(load_capture("kind-2022-ambient-worker2"), "node")
    for text in ("10.244.2.7 from 10.244.2.3 iif vethproductpage mark 0x100", "10.244.2.3 from 10.244.2.7 iif "
                 "veth6cc9a213 mark 0x210", "10.244.2.7 from 10.244.1.19 iif eth0", "172.18.0.4"):
        query = parse_query(text)
        assert public(answer(mine, query)) == public(answer(theirs, query)), text
