"""Workshop kit: student notebooks (generated, executed: only the stubs may fail), the release
zip, check-env, the workshop guide's references, and the spelling of the prose."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ambientlab.check import EXERCISES
from ambientlab.checkenv import Check, pins, python_checks, report
from ambientlab.student import stub_for, student_notebook, write_release, write_student
from tests.conftest import ROOT

CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_a_solution_becomes_a_stub_with_the_hints() -> None:
    stub = stub_for('x = 1\nprint(check.answer("02-xmark", x))\nprint(check.answer("02-xmark-full", x))')
    assert stub.splitlines()[-1].startswith('raise NotImplementedError("exercise 02-xmark, 02-xmark-full. Hint: 02-xmark: ')
    assert EXERCISES["02-xmark-full"][1] in stub
    compile(stub, "stub", "exec")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_runs_and_only_the_stubs_fail(chapter: Path) -> None:
    nb = student_notebook(chapter)
    stubs = [i for i, c in enumerate(nb.cells) if "stub" in c.metadata.get("tags", [])]
    assert stubs or chapter.name.startswith("A"), "every chapter but the appendices has an exercise"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells)
    NotebookClient(nb, timeout=120, allow_errors=True, resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    errors = {i: o["ename"] for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o["output_type"] == "error"}
    assert errors == {i: "NotImplementedError" for i in stubs}


def test_make_student_and_release(tmp_path: Path) -> None:
    written = write_student(tmp_path / "student")
    assert [p.name for p in written] == [p.name for p in CHAPTERS]
    target = write_release(tmp_path / "release", tmp_path / "student")
    names = zipfile.ZipFile(target).namelist()
    top = names[0].split("/")[0]
    for needed in ("QUICKSTART.md", "requirements.txt", "pyproject.toml", "notebooks/13-live-lab.ipynb",
                   "data/kind-2022-ambient-worker2/manifest.yaml", "src/ambientlab/cli.py"):
        assert f"{top}/{needed}" in names, needed
    for name in names:
        if name.endswith(".ipynb"):
            nb = nbformat.reads(zipfile.ZipFile(target).read(name).decode(), 4)
            assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells), name


def test_check_env_reports_every_pin() -> None:
    checks = python_checks()
    names = [c.what for c in checks]
    assert names[0] == "python" and set(pins()) <= set(names)
    assert all(c.ok for c in checks), [c.line() for c in checks if not c.ok]
    assert Check("nft", False, "not found (apt-get install nftables)").line() == "[FAIL] nft: not found (apt-get install nftables)"
    assert Check("kernel: geneve", False, "CONFIG_GENEVE", required=False).line() == "[warn] kernel: geneve: CONFIG_GENEVE"
    lines, ok = report(lab=False)
    assert ok and all(re.match(r"^\[( OK |FAIL|warn)\] ", line) for line in lines)


def test_check_env_command_with_the_lab(netns_ok: None) -> None:
    done = subprocess.run([sys.executable, "-m", "ambientlab.cli", "check-env"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("[ OK ] root", "[ OK ] kernel: TPROXY", "[ OK ] kernel: nft monitor trace (TRACE target)"):
        assert line in done.stdout
    assert done.stdout.rstrip().endswith("ready for the workshop")


def test_the_workshop_guide_names_real_exercises_and_chapters() -> None:
    text = (ROOT / "book" / "workshop.md").read_text()
    named = set(re.findall(r"`(\d\d-[a-z0-9-]+)`", text))
    assert named and named <= set(EXERCISES), named - set(EXERCISES)
    for link in re.findall(r"\]\(\.\./notebooks/([^)]+)\)", text):
        assert (ROOT / "notebooks" / f"{link}.ipynb").is_file(), link


def test_the_prose_is_spelled_right(tmp_path: Path) -> None:
    """codespell over the README, the book's pages, the chapters' cells, the code and the tests
    (the allow-list is in pyproject.toml)."""
    for chapter in CHAPTERS:
        cells = nbformat.read(chapter, 4).cells
        (tmp_path / f"{chapter.stem}.md").write_text("\n".join(c.source for c in cells))
    done = subprocess.run([str(Path(sys.executable).parent / "codespell"), "--toml", str(ROOT / "pyproject.toml"),
                           "README.md", "book", "src/ambientlab", "tests", "benchmarks", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
