"""`ambientlab capture --lab` against the live lab as a real host: the lab's node (and ztunnel pod,
or in-pod the pods' own namespaces) read with the real tools, with a kubectl on PATH that cannot
reach any cluster (a lab needs none). The capture must parse, print what the lab was built from,
and walk like it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ambientlab import load_capture
from ambientlab.core.recordings import verdict
from ambientlab.core.trace.walks import walk
from ambientlab.live.collect import Runner, dry_run, lab_target, run_capture
from ambientlab.live.lab.runtime import Lab, up
from ambientlab.live.outputs import clean_output, netnsid_names
from tests.conftest import write_fake

pytestmark = pytest.mark.kernel


@pytest.fixture
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubectl first on PATH that answers every call with "connection refused" (and logs it)."""
    write_fake(tmp_path, "kubectl")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBECTL", "refused")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    return tmp_path / "calls.log"


@pytest.fixture(params=("2022", "inpod"))
def lab(request: pytest.FixtureRequest, netns_ok: None) -> Iterator[Lab]:
    built = up(design=request.param)
    try:
        yield built
    finally:
        built.down()


def test_capture_reads_the_lab_like_a_node(lab: Lab, no_cluster: Path, tmp_path: Path) -> None:
    source = load_capture(lab.state["capture"])
    inpod = lab.state["design"] == "inpod"
    options = {"with_ztunnel": not inpod, "pods": lab.state["inpod"]}
    listed = [line.split("  # ")[0] for line in dry_run(lab_target(lab.prefix), "mine", **options)
              if not line.startswith("#")]
    runner = Runner()
    written = run_capture(lab_target(lab.prefix), tmp_path / "mine", runner, **options)
    assert [line.split("  # ")[0] for line in runner.lines] == listed
    assert not no_cluster.exists()  # kubectl was never called
    mine = load_capture(tmp_path / "mine")
    mine.verify()
    def printed(path: str) -> str:  # as `lab status` compares: without date comments and trailing blanks
        text = clean_output(mine.text(path))
        host = path.split("/")[0]
        return netnsid_names(lab.ns, host, text) if path.endswith("/ip-addr.txt") else text

    compared = {p: verdict(source, p, source.entry(p)["parser"], printed(p)) for p in written
                if p in source.files.index and not p.startswith("cluster/")}
    assert len(compared) >= 14 and "DIFFERENT" not in compared.values(), compared
    assert not [p for p in written if p.startswith(("node/ip-d-link", "ztunnel/")) and inpod]
    if inpod:
        for scenario in ("inpod-outbound", "inpod-inbound", "inpod-probe"):
            assert walk(mine, scenario)["matched"].tolist() == walk(source, scenario)["matched"].tolist()
    else:
        for scenario in ("same-node-vip", "inbound-remote", "kubelet"):
            assert walk(mine, scenario)["matched"].tolist() == walk(source, scenario)["matched"].tolist()
