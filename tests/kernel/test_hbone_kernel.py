"""HBONE on the real kernel: a two-node lab per ztunnel behaviour, a connection from
productpage-v1 (ambient-worker2) to reviews-v1 (ambient-worker) through both stand-in
ztunnels, what the underlay carries, what the far ztunnel refuses, the kernel's trace of both
nodes against the tracer, and teardown."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pandas as pd
import pytest

from ambientlab.core.parse.wire import plaintext_hits, read_pcap, tls_records
from ambientlab.core.trace.nftrace import compare, kernel_segments
from ambientlab.core.trace.predict import predict_hbone
from ambientlab.live.lab.nftrace import trace_hbone
from ambientlab.live.lab.pki import spiffe_id, write_pki
from ambientlab.live.lab.runtime import Lab, namespaces_with_prefix, state_root, up
from ambientlab.live.lab.status import differences
from ambientlab.live.lab.wire import sniff

pytestmark = pytest.mark.kernel
LINE = "a line only the two apps may read"


@pytest.fixture(scope="module", params=("marks-2022", "no-marks"))
def lab(request: pytest.FixtureRequest, netns_ok: None) -> Iterator[Lab]:
    built = up(behaviour=request.param, nodes=2)
    try:
        yield built
    finally:
        prefix = built.prefix
        built.down()
        assert namespaces_with_prefix(prefix) == [] and not (state_root() / prefix).exists()


def _tunnels(lab: Lab, process: str, before: int) -> list[dict[str, object]]:
    return [e for e in lab.events(process)[before:] if e.get("listener") in (15001, 15008)]


def test_both_nodes_print_their_captures(lab: Lab) -> None:
    found = differences(lab)
    assert "DIFFERENT" not in found.values(), {k: v for k, v in found.items() if v == "DIFFERENT"}
    assert found["worker-node/ip-route-table-100.txt"] == "same text"
    assert found["worker-node/ip-addr.txt"] == "same text"


def test_a_connection_crosses_the_nodes_through_both_ztunnels(lab: Lab) -> None:
    near, far = len(lab.events("ztunnel")), len(lab.events("worker-ztunnel"))
    greeting = lab.connect("productpage-v1", "worker-reviews-v1", sport=40555, send=LINE)
    # the server sees the client-side ztunnel's address: Envoy's HBONE source, borrowed on the far side
    assert greeting.startswith("hello from worker-reviews-v1 (10.244.1.23:9080); you are 10.244.2.10:")
    assert greeting.endswith(f"echo: {LINE}")
    out = _wait(lab, "ztunnel", near)
    assert out["event"] == "tunnel" and out["direction"] == "outbound" and out["peer"] == "10.244.2.3:40555"
    assert out["source_identity"] == spiffe_id("bookinfo-productpage")
    assert out["destination_identity"] == spiffe_id("bookinfo-reviews")
    assert (out["tls"], out["alpn"], out["authority"]) == ("TLSv1.3", "h2", "10.244.1.23:9080")
    assert str(out["hbone"]).startswith("10.244.2.10:") and str(out["hbone"]).endswith(" -> 10.244.1.23:15008")
    assert out["bytes_up"] == len(LINE) + 1 and int(str(out["bytes_down"])) > len(LINE)
    inbound = _wait(lab, "worker-ztunnel", far)
    assert inbound["direction"] == "inbound" and inbound["peer"] == str(out["hbone"]).split(" -> ")[0]
    assert inbound["source_identity"] == spiffe_id("bookinfo-productpage")
    assert str(inbound["onward"]).endswith("-> 10.244.1.23:9080")
    port = str(inbound["onward"]).split(" -> ")[0]
    assert greeting.split("you are ")[1].split()[0] == port
    assert (inbound["bytes_up"], inbound["bytes_down"]) == (out["bytes_up"], out["bytes_down"])


def _wait(lab: Lab, process: str, before: int) -> dict[str, object]:
    import time

    for _ in range(60):
        found = _tunnels(lab, process, before)
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"{process} logged nothing: {lab.events(process)[before:]}")


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_the_underlay_carries_only_tls_on_15008(lab: Lab) -> None:
    output, pcap = sniff(lab, lambda: lab.connect("productpage-v1", "worker-reviews-v1", send=LINE))
    assert output.endswith(LINE)
    frames = pd.DataFrame(read_pcap(pcap))
    tcp = frames[frames["proto"] == "tcp"]
    assert len(tcp) and set(tcp["sport"]).union(tcp["dport"]) & {9080} == set()
    assert set(tcp["sport"]).union(tcp["dport"]) >= {15008}
    records = tls_records(frames, 15008)
    assert "not TLS" not in set(records["record"]) and list(records.query("message == 'ClientHello'")["alpn"]) == ["h2"]
    assert plaintext_hits(frames, LINE) == [] and plaintext_hits(frames, "hello from") == []
    # the same line from a pod outside the mesh (the peer) crosses in the clear
    output, pcap = sniff(lab, lambda: lab.connect("peer", "worker-reviews-v1", send=LINE))
    assert output.endswith(LINE) and len(plaintext_hits(pd.DataFrame(read_pcap(pcap)), LINE)) == 2


def test_a_certificate_from_an_untrusted_ca_is_refused(lab: Lab) -> None:
    rogue = lab.folder / "rogue"
    write_pki(rogue, ["bookinfo-productpage"])
    before, app = len(lab.events("worker-ztunnel")), len(lab.events("worker-reviews-v1"))
    result = lab.hbone("ztunnel", "worker-reviews-v1", "10.244.1.23:9080", "bookinfo-productpage", rogue)
    # refused, whether the alert or the end of the connection reached the client first
    assert result.startswith("error: refused by the peer before HTTP/2 began ("), result
    refused = _wait(lab, "worker-ztunnel", before)
    assert refused["event"] == "refused" and refused["error"] == "TLS: CERTIFICATE_VERIFY_FAILED"
    assert [e for e in lab.events("worker-reviews-v1")[app:] if e.get("event") == "accepted"] == []
    # the lab's own certificate for the same account is accepted
    good = lab.hbone("ztunnel", "worker-reviews-v1", "10.244.1.23:9080", "bookinfo-productpage")
    assert good.startswith("hello from worker-reviews-v1")


def test_a_connect_to_a_pod_not_on_that_node_is_refused(lab: Lab) -> None:
    before = len(lab.events("worker-ztunnel"))
    result = lab.hbone("ztunnel", "worker-reviews-v1", "10.244.2.5:9080", "bookinfo-productpage")
    assert result == "error: HboneError: CONNECT 10.244.2.5:9080 refused: status 400"
    refused = _wait(lab, "worker-ztunnel", before)
    assert refused["error"] == "HboneError: CONNECT target 10.244.2.5:9080 is not a workload on ambient-worker"
    assert refused["source_identity"] == spiffe_id("bookinfo-productpage")


def test_the_kernel_trace_of_both_nodes_agrees_with_the_tracer(lab: Lab) -> None:
    output, texts, conn = trace_hbone(lab, "productpage-v1", "worker-reviews-v1", sport=40777)
    assert output.startswith("hello from worker-reviews-v1")
    prediction = predict_hbone(conn)
    assert prediction.works
    table = compare(prediction.hops, kernel_segments(texts, lab.prefix))
    assert table["agree"].all(), table[~table["agree"]].to_string()
    assert set(table["host"]) == {"node", "ztunnel", "worker-node", "worker-ztunnel"}
