"""AMBIENTLAB_CAPTURE: a chapter reads another capture, or says in its first cell what that
capture lacks."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from ambientlab import load_capture
from ambientlab.book.chapters import CaptureMismatch, chapter_capture, node_pods
from ambientlab.cli.main import main

DEMO = "kind-2022-ambient-worker2"
NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def test_the_default_unless_the_variable_names_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMBIENTLAB_CAPTURE", raising=False)
    assert chapter_capture(DEMO, needs=["node/nothing.txt"], layout=True).name == DEMO
    monkeypatch.setenv("AMBIENTLAB_CAPTURE", "lab-2026-11-ambient-worker2")  # the lab printed the same node
    assert chapter_capture(DEMO, needs=["node/ip-rule.txt"], layout=True).name == "lab-2026-11-ambient-worker2"
    assert node_pods(load_capture("lab-2026-11-ambient-worker2")) == node_pods(load_capture(DEMO))


def test_what_another_capture_lacks_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENTLAB_CAPTURE", "kind-2022-kebe")
    with pytest.raises(CaptureMismatch, match=r"reads node/iptables-save\.txt, which capture kind-2022-kebe"):
        chapter_capture(DEMO, needs=["node/ip-rule.txt", "node/iptables-save.txt"])
    with pytest.raises(CaptureMismatch, match=r"walks the packets of kind-2022-ambient-worker2's pods"):
        chapter_capture(DEMO, layout=True)
    monkeypatch.setenv("AMBIENTLAB_CAPTURE", "inpod-1.22-ambient-worker2")  # same pods: the layout holds
    assert chapter_capture(DEMO, layout=True).name == "inpod-1.22-ambient-worker2"


def _run(notebook: str, capture: str, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("AMBIENTLAB_CAPTURE", capture)
    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def test_a_walk_chapter_runs_on_a_capture_recorded_by_ambientlab_capture(
        fake_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "my-node"
    assert main(["capture", str(mine), "--kind-node", "ambient-worker2", "--with-ztunnel"]) == 0
    nb = _run("08-walk-same-node.ipynb", str(mine), monkeypatch)
    first = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "| capture: my-node" in first


def test_a_chapter_says_what_a_capture_lacks_in_its_first_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CellExecutionError) as caught:
        _run("08-walk-same-node.ipynb", "kind-2022-kebe", monkeypatch)
    assert "CaptureMismatch" in str(caught.value) and "unset AMBIENTLAB_CAPTURE" in str(caught.value)
