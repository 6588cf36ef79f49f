"""`ambientlab capture` without a cluster: fake docker, kubectl and ip on PATH replay a capture's
recorded outputs and log every call. The dry run must list exactly the commands the real run
starts, in order; nothing but read-only tools may run on the node; the debug pod is created under
a known name and deleted, also when the capture fails; a failed capture leaves no folder; a lab
needs no cluster. The result must parse and walk like the capture it replays."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from ambientlab import load_capture
from ambientlab.cli.main import main
from ambientlab.core.capture import Capture
from ambientlab.core.constants import INPOD_REDIRECT
from ambientlab.core.redirection import IN_POD, IN_POD_REDIRECT, IN_POD_UNKNOWN, NODE_LEVEL
from ambientlab.core.trace.walks import walk
from ambientlab.live.collect import ZTUNNEL_POD, debug_pod_name
from tests.conftest import DATA, write_fake

DEMO = load_capture("kind-2022-ambient-worker2")
INPOD = "inpod-1.22-ambient-worker2"
READ_ONLY = {"ip", "ipset", "iptables-save", "sysctl", "uname", "iptables"}


def _calls(fake_path: Path) -> list[str]:
    log = fake_path / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def _dry(argv: list[str], capsys: pytest.CaptureFixture[str], found: dict[str, str]) -> tuple[list[str], list[str]]:
    """Return (the dry run's comment lines, its commands with the capitalised words filled in as
    the look-ups answer them)."""
    assert main([*argv, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = []
    for line in lines:
        if not line.startswith("#"):
            words = shlex.split(line.split("  # ")[0])
            commands.append(shlex.join([found.get(w, w) for w in words]))
    return [line for line in lines if line.startswith("#")], commands


def _node_commands(calls: list[str]) -> list[list[str]]:
    """Return the commands that ran on the node (or in a pod's or ztunnel's namespace there)."""
    out = []
    for call in map(shlex.split, calls):
        inner = call[3:] if call[:2] == ["docker", "exec"] else call[call.index("--") + 1:] if "exec" in call and \
            call[0] == "kubectl" else call if call[0] == "ip" else []
        inner = inner[2:] if inner[:2] == ["chroot", "/host"] else inner
        while inner[:3] == ["ip", "netns", "exec"]:
            inner = inner[4:]
        if inner[:4] == ["ip", "-all", "netns", "exec"]:
            inner = inner[4:]
        if inner:
            out.append(inner)
    return out


PODS = {"NETNS-OF-productpage-v1": "cni-productpage-v1", "NETNS-OF-reviews-v1": "cni-reviews-v1"}


@pytest.mark.parametrize(("how", "capture", "found", "design"), [
    (["--kind-node", "ambient-worker2", "--with-ztunnel"], DEMO.name, {ZTUNNEL_POD: "ztunnel-gzlxs"}, NODE_LEVEL),
    (["--kubectl-debug", "ambient-worker2", "--with-ztunnel"], DEMO.name, {ZTUNNEL_POD: "ztunnel-gzlxs"}, NODE_LEVEL),
    (["--kind-node", "ambient-worker2", "--pods", "productpage-v1,reviews-v1"], INPOD, PODS, IN_POD),
    (["--kind-node", "ambient-worker2", "--pods", "productpage-v1,reviews-v1"], INPOD_REDIRECT, PODS, IN_POD_REDIRECT),
    (["--kind-node", "ambient-worker2"], INPOD_REDIRECT, {}, IN_POD_UNKNOWN),
])
def test_the_dry_run_lists_exactly_what_the_real_run_starts(how: list[str], capture: str, found: dict[str, str],
                                                             design: str, fake_path: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_CAPTURE", str(DATA / capture))
    out = tmp_path / "mine"
    notes, dry = _dry(["capture", str(out), *how], capsys, found)
    assert _calls(fake_path) == [] and not out.exists()  # the dry run ran nothing, wrote nothing
    assert main(["capture", str(out), *how]) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert "files and manifest.yaml written" in said
    assert f"design: this cluster runs the {design} design: " in said  # which design the capture shows
    if design == IN_POD_UNKNOWN:
        assert "capture again with --pods NAME" in said
    real = _calls(fake_path)
    assert dry == real
    kubectl = [c for c in real if c.startswith("kubectl")]
    assert any("get deploy -n istio-system istiod" in c for c in kubectl)  # Istio's version, a look-up
    assert sum(" get pod " in c for c in kubectl) == 2  # the node's pods and the ztunnel pods
    assert [c[1] for c in _node_commands(real) if c[0] == "uname"] == ["-r"]  # the version probes
    assert {c[0] for c in _node_commands(real)} <= READ_ONLY  # no mktemp, no rm: nothing written on the node
    assert "Nothing is written on the node" in notes[1]
    if "--kubectl-debug" in how:
        pod = debug_pod_name("ambient-worker2")
        assert pod == "ambientlab-capture-ambient-worker2"
        assert real[0].startswith(f"kubectl -n default run {pod} ") and real[-1] == \
            f"kubectl -n default delete pod {pod} --ignore-not-found --now"
        assert f"It CREATES the pod {pod}" in notes[1]
        assert json.loads(shlex.split(real[0])[-1])["spec"]["nodeName"] == "ambient-worker2"
    else:
        assert "It creates nothing" in notes[1] and not [c for c in real if " run " in c or " delete " in c]
    mine = load_capture(out)
    mine.verify()  # every file listed, hashed and parsed
    assert [p.name for p in tmp_path.iterdir() if p.name != "bin"] == ["mine"]  # the work folder was renamed
    if "--pods" in how:
        assert "NETNS-OF-productpage-v1" in notes[2]
        assert mine.text("reviews-v1/iptables-save.txt") == load_capture(capture).text("reviews-v1/iptables-save.txt")
    elif "--kind-node" in how and capture == DEMO.name:
        _reads_and_walks_like_the_demo(mine)


def _reads_and_walks_like_the_demo(mine: Capture) -> None:
    """A capture of the fake kind node (which replays the demo) must read and walk like the demo."""
    assert mine.manifest["capture"] == "mine"
    assert mine.manifest["cluster"] == "Istio 0.0.0-ambient.191fe680b52c1754ee72a06b3e0d3f9d116f2e82"
    assert set(mine.files["origin"]) == {"recorded"}
    assert mine.manifest["node_tools"] == {"kernel": "5.15.0-fake", "iproute2": "ip utility, iproute2-5.19.0",
                                           "iptables": "iptables v1.8.7 (nf_tables)",
                                           "ipset": "ipset v7.15, protocol version: 7"}
    for path in ("node/ip-rule.txt", "node/ip-route-table-100.txt", "node/iptables-save.txt", "node/ipset-list.txt",
                 "ztunnel/iptables-save.txt", "ztunnel/ip-d-link-pistioin.txt"):
        assert mine.text(path) == DEMO.text(path), path
    assert mine.entry("node/ip-rule.txt")["command"] == "docker exec ambient-worker2: ip rule"
    assert mine.parse("cluster/kubectl-get-pods-ambient-worker2.txt")["NODE"].unique().tolist() == ["ambient-worker2"]
    for scenario in ("same-node-vip", "inbound-remote"):
        assert walk(mine, scenario)["matched"].tolist() == walk(DEMO, scenario)["matched"].tolist()


def test_a_failed_capture_leaves_no_folder_and_still_deletes_the_debug_pod(fake_path: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    assert main(["capture", str(out), "--kind-node", "ambient-worker2"]) == 0
    assert main(["capture", str(out), "--kind-node", "ambient-worker2"]) == 2
    assert "already holds a capture" in capsys.readouterr().err
    _calls(fake_path)
    monkeypatch.setenv("FAKE_FAIL", "iptables-save")
    assert main(["capture", str(tmp_path / "kebe"), "--kubectl-debug", "ambient-worker2"]) == 2
    assert "iptables-save (on node) failed (1): fake iptables-save: failing as FAKE_FAIL asks" in capsys.readouterr().err
    assert _calls(fake_path)[-1].startswith("kubectl -n default delete pod ambientlab-capture-ambient-worker2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "mine"]  # no kebe, no hidden work folder
    with pytest.raises(SystemExit):
        main(["capture", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--kubectl-debug is the one mode that CREATES something: a privileged pod ambientlab-capture-NODE" in help_text
    assert "deleted at the end (also when the capture fails)" in help_text and "--kind-node and --lab create nothing" in help_text
    monkeypatch.setenv("FAKE_KUBECTL", "refused")  # a kind node's capture asks the cluster first
    assert main(["capture", str(tmp_path / "nocluster"), "--kind-node", "ambient-worker2"]) == 2
    assert "was refused" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "mine"]


def _fake_lab(root: Path, prefix: str) -> None:
    """Write the state of a lab ``prefix`` that is up (built from the demo) under ``root``."""
    (root / prefix).mkdir(parents=True)
    pods = {name: ip for name, ip in (("productpage-v1", "10.244.2.3"), ("reviews-v1", "10.244.2.7"))}
    (root / prefix / "state.json").write_text(json.dumps({
        "prefix": prefix, "phase": "up", "capture": DEMO.name, "hosts": ["node", "ztunnel", *pods],
        "pods": pods, "processes": {}, "breaks": [], "namespaces": []}))


def test_a_lab_capture_needs_no_cluster_and_a_lab_that_is_not_there_leaves_nothing(
        fake_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`capture --lab` with a kubectl that cannot reach a cluster (and the lab's `ip netns exec`
    replayed by a fake ip): it never calls kubectl, and its cluster listings are the lab's source's."""
    write_fake(fake_path, "ip")
    monkeypatch.setenv("AMBIENTLAB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("FAKE_KUBECTL", "refused")
    _fake_lab(tmp_path / "state", "alfake")
    out = tmp_path / "mine"
    notes, dry = _dry(["capture", str(out), "--lab", "alfake", "--with-ztunnel"], capsys, {})
    assert main(["capture", str(out), "--lab", "alfake", "--with-ztunnel"]) == 0, capsys.readouterr().err
    real = _calls(fake_path)
    assert dry == real and all(c.startswith("ip netns exec alfake-") for c in real)
    assert "It creates nothing" in notes[1]
    mine = load_capture(out)
    mine.verify()
    assert mine.text("cluster/kubectl-get-pods-ztunnel.txt") == DEMO.text("cluster/kubectl-get-pods-ztunnel.txt")
    assert "copied from capture kind-2022-ambient-worker2" in mine.entry("cluster/kubectl-get-nodes.txt")["note"]
    assert mine.text("ztunnel/iptables-save.txt") == DEMO.text("ztunnel/iptables-save.txt")
    assert walk(mine, "same-node-vip")["matched"].tolist() == walk(DEMO, "same-node-vip")["matched"].tolist()
    for argv in (["capture", str(tmp_path / "nosuch"), "--lab", "nosuch"],
                 ["capture", str(tmp_path / "nosuch"), "--lab", "nosuch", "--dry-run"]):
        assert main(argv) == 2
        assert "no lab 'nosuch' is running" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "mine", "state"]
