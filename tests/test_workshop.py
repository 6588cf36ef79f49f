"""Workshop kit: student notebooks (generated; only the stubs may fail), the release
zip, check-env, the workshop guide's references, and the spelling of the prose."""

from __future__ import annotations

import ast
import builtins
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from ambientlab.book.check import EXERCISES
from ambientlab.book.student import stub_for, student_notebook, translate_markdown, write_release, write_student
from ambientlab.live.checkenv import Check, pins, python_checks, report
from tests.conftest import ROOT

CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_a_solution_becomes_a_stub_with_the_hints() -> None:
    stub = stub_for('x = 1\nprint(book.answer("02-xmark", x))\nprint(book.answer("02-xmark-full", x))')
    assert stub.splitlines()[-1].startswith('raise NotImplementedError("exercise 02-xmark, 02-xmark-full. Hint: 02-xmark: ')
    assert EXERCISES["02-xmark-full"].hints[0] in stub and 'book.hint(\\"02-xmark-full\\", 2)' in stub
    assert EXERCISES["02-xmark-full"].hints[1] not in stub  # the later hints are the reader's to ask for
    compile(stub, "stub", "exec")
    walk = stub_for('print(book.answer("06-walk-ratings-vip", book.devices(syn)))')
    assert "book.send(demo, origin, dst, dport, …)" in walk and "book.send" not in stub


def _bound_and_used(source: str) -> tuple[set[str], set[str]]:
    """Return (names a cell binds, names it reads before a statement of its own binds them)."""
    bound: set[str] = set()
    used: set[str] = set()
    for statement in ast.parse(TransformerManager().transform_cell(source)).body:
        here: set[str] = set()
        for node in ast.walk(statement):
            if isinstance(node, ast.Name):
                if isinstance(node.ctx, (ast.Store, ast.Del)):
                    here.add(node.id)
                elif node.id not in bound:
                    used.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                here.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                here.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.arg):
                here.add(node.arg)
        bound |= here
    return bound, used


def _mutated(source: str) -> set[str]:
    """Return the names whose attributes or items a cell assigns (``x.a = …``, ``x[k] = …``)."""
    out = set()
    for node in ast.walk(ast.parse(TransformerManager().transform_cell(source))):
        if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, ast.Store):
            base = node.value
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if isinstance(base, ast.Name):
                out.add(base.id)
    return out


def solution_leaks(nb: nbformat.NotebookNode) -> list[str]:
    """Return, for each code cell that is not a solution, the names it reads that only a
    solution cell before it defines or changes."""
    known = set(dir(builtins)) | {"display", "get_ipython"}
    only_solutions: set[str] = set()
    leaks = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        bound, used = _bound_and_used(cell.source)
        if "solution" in cell.metadata.get("tags", []):
            only_solutions |= (bound | _mutated(cell.source)) - known
            continue
        if used & only_solutions:
            leaks.append(f"code cell {i} uses {sorted(used & only_solutions)}, which only a solution defines or changes")
        only_solutions -= bound
    return leaks


def test_a_cell_that_needs_a_solution_is_found() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("frame = {}\nx = 1"),
                nbformat.v4.new_code_cell("answer = x + 1\nframe['k'] = 2", metadata={"tags": ["solution"]}),
                nbformat.v4.new_code_cell("print(len(frame))"),
                nbformat.v4.new_code_cell("answer = 3\nprint(answer, x)"),
                nbformat.v4.new_code_cell("%time print(answer)")]
    assert solution_leaks(nb) == ["code cell 2 uses ['frame'], which only a solution defines or changes"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_fails_only_in_its_stubs(chapter: Path) -> None:
    """The student notebook is the chapter (which nbval runs) less its solutions: each stub raises
    NotImplementedError, and no other cell needs what only a solution defines or changes. Checked
    on the code, so that every chapter runs once per test run (nbval), not once more here."""
    nb = student_notebook(chapter)
    stubs = [i for i, c in enumerate(nb.cells) if "stub" in c.metadata.get("tags", [])]
    assert stubs or chapter.name.startswith("A"), "every chapter but the appendices has an exercise"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells)
    for i in stubs:
        with pytest.raises(NotImplementedError, match="exercise"):
            exec(compile(nb.cells[i].source, f"{chapter.name} cell {i}", "exec"), {})
    assert solution_leaks(nbformat.read(chapter, as_version=4)) == []


def test_make_student_and_release(tmp_path: Path) -> None:
    written = write_student(tmp_path / "student")
    assert [p.name for p in written] == [p.name for p in CHAPTERS]
    target = write_release(tmp_path / "release", tmp_path / "student")
    names = zipfile.ZipFile(target).namelist()
    top = names[0].split("/")[0]
    for needed in ("QUICKSTART.md", "requirements.txt", "pyproject.toml", "notebooks/13-live-lab.ipynb",
                   "data/kind-2022-ambient-worker2/manifest.yaml", "src/ambientlab/cli/main.py"):
        assert f"{top}/{needed}" in names, needed
    for name in names:
        if name.endswith(".ipynb"):
            nb = nbformat.reads(zipfile.ZipFile(target).read(name).decode(), 4)
            assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells), name


def test_the_chinese_kit_carries_the_translated_prose(tmp_path: Path) -> None:
    """make student LANG=zh: every markdown cell's prose is the zh edition's (from the same
    catalogs), code cells are the English kit's, and the zip's quick start is Chinese too."""
    english = write_student(tmp_path / "en")
    chinese = write_student(tmp_path / "zh", lang="zh")
    assert [p.name for p in chinese] == [p.name for p in english]
    for en_path, zh_path in zip(english, chinese, strict=True):
        en, zh = nbformat.read(en_path, 4), nbformat.read(zh_path, 4)
        assert [c.source for c in zh.cells if c.cell_type == "code"] == [c.source for c in en.cells if c.cell_type == "code"]
        prose = "".join(c.source for c in zh.cells if c.cell_type == "markdown")
        assert len(re.findall(r"[\u4e00-\u9fff]", prose)) > 200, zh_path.name
    first = nbformat.read(tmp_path / "zh" / "01-the-demo-cluster.ipynb", 4).cells
    assert first[0].cell_type == "markdown" and first[0].source.startswith("# ") and re.search(r"[\u4e00-\u9fff]", first[0].source)
    target = write_release(tmp_path / "release", tmp_path / "zh", lang="zh")
    assert target.name.endswith("-zh.zip")
    quickstart = next(n for n in zipfile.ZipFile(target).namelist() if n.endswith("QUICKSTART.md"))
    assert re.search(r"[\u4e00-\u9fff]{4}", zipfile.ZipFile(target).read(quickstart).decode())


def test_translating_a_markdown_cell_keeps_its_structure() -> None:
    source = "## Head\n\n1. item one\n   more\n\n:::{note}\nInside.\n:::\n\n| a | `b` |\n|---|---|\n\n```console\n$ ip rule\n```"
    words = {"Head": "标题", "item one more": "第一项", "Inside.": "内部。", "a": "甲", "`b`": "`b`"}
    text, missing = translate_markdown(source, words.get)
    assert missing == []
    assert text == "## 标题\n\n1. 第一项\n\n:::{note}\n内部。\n:::\n\n| 甲 | `b` |\n|---|---|\n\n```console\n$ ip rule\n```"
    assert translate_markdown("Untranslated here.", words.get) == ("Untranslated here.", ["Untranslated here."])


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
    done = subprocess.run([sys.executable, "-m", "ambientlab.cli.main", "check-env"], capture_output=True, text=True)
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


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_a_first_guess_is_a_placeholder(chapter: Path) -> None:
    """The cell under an exercise (not its solution) answers ``...``: it shows the form of the answer
    and the first, gentle hint, and no wrong guess whose feedback would state the reasoning."""
    cells = nbformat.read(chapter, 4).cells
    start = next((i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source), len(cells))
    for cell in cells[start:]:
        if cell.cell_type != "code" or "solution" in cell.metadata.get("tags", []) or "book.answer(" not in cell.source:
            continue
        assert re.search(r"^(prediction|your_answer) = \.\.\.  #", cell.source, re.M), cell.source
        printed = "".join(o.get("text", "") for o in cell.get("outputs", []))
        assert printed.startswith("No answer yet"), printed


def test_each_try_it_moment_of_the_guide_has_an_explorer_in_its_chapter() -> None:
    text = (ROOT / "book" / "workshop.md").read_text()
    section = text.split("## Try it: the walk explorer", 1)[1].split("\n## ", 1)[0]
    chapters = re.findall(r"\(chapter (\d+)'s", section)
    assert chapters == ["8", "9", "10", "11"], chapters
    for number in chapters:
        notebook = next((ROOT / "notebooks").glob(f"{int(number):02d}-*.ipynb"))
        cells = json.loads(notebook.read_text())["cells"]
        assert any("book.explorer(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code"), notebook.name
