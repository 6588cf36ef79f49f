"""The live lab with kube-proxy's chains (``lab up --kube-proxy``): the node loads the
reconstructed rules, details-v1 (outside the mesh) calls the reviews service, and ``lab trace
--walk`` agrees with the tracer's walk hook by hook, the DNAT'd passages included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ambientlab.core.trace.nftrace import compare, kernel_segments
from ambientlab.live.lab.nftrace import trace_walk
from ambientlab.live.lab.runtime import Lab, LabError, up
from ambientlab.live.lab.status import differences

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def lab(netns_ok: None) -> Iterator[Lab]:
    built = up(kube_proxy=True)
    try:
        yield built
    finally:
        built.down()


def test_the_lab_loads_kube_proxys_chains(lab: Lab) -> None:
    found = differences(lab)
    assert found["node/iptables-save-kube-proxy.txt"] == "same text" and "node/iptables-save.txt" not in found
    assert found["node/ip-rule.txt"] == "same text" and found["ztunnel/iptables-save.txt"] == "same text"
    assert found["node/ip-addr.txt"] == "DIFFERENT"  # details-v1's veth, which the capture has not
    assert "KUBE-SVC-53SQRANQXVHTJ6HK" in lab.run("node", "iptables-save", "-t", "nat")
    with pytest.raises(LabError, match="one-node 2022 lab"):
        up(kube_proxy=True, nodes=2)


@pytest.mark.parametrize(("name", "hooks", "greeting"), [
    ("service-outside-mesh-remote", 9, "hello from peer (10.244.1.23:9080); you are 10.244.2.4:41000"),
    ("service-outside-mesh-local", 27, "hello from reviews-v2 (10.244.2.5:9080); you are 10.244.2.4:"),
])
def test_lab_trace_of_the_walk_agrees_hook_by_hook_nat_included(lab: Lab, name: str, hooks: int, greeting: str) -> None:
    output, texts, frame = trace_walk(lab, name)
    assert output.startswith(greeting), output
    table = compare(frame, kernel_segments(texts, lab.prefix))
    assert table["agree"].all(), table[~table["agree"]].to_string()
    assert len(table) == hooks and (table["headers"].str.contains("> 10.96.183.192:9080")).sum() == 2
    # the draw is pinned only while the walk is traced: kube-proxy's own probabilities are back after
    assert "--probability 0.33333333349" in lab.run("node", "iptables-save", "-t", "nat")


def test_the_command_line_traces_a_walk(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    from ambientlab.cli.main import main

    assert main(["lab", "trace", "--walk", "service-outside-mesh-remote", "--prefix", lab.prefix]) == 0
    out = capsys.readouterr().out
    assert "client: hello from peer (10.244.1.23:9080)" in out and "9 of 9 hooks agree" in out
    assert main(["lab", "trace", "--prefix", lab.prefix]) == 2  # neither SOURCE DESTINATION nor --walk
    assert "needs SOURCE and DESTINATION, or --walk NAME" in capsys.readouterr().err
