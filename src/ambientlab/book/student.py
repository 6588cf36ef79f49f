"""Student notebooks and the workshop zip, generated from the chapters.

A chapter's solution cells (tagged ``solution``) become a stub that raises
``NotImplementedError`` with the exercise's first (gentlest) hint and how to ask for the next one
(from :mod:`ambientlab.book.check`); every output is cleared. Instructors keep the full notebooks.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import nbformat

from ambientlab import __version__
from ambientlab.book.check import EXERCISES

ROOT = Path(__file__).resolve().parents[3]
NOTEBOOKS = ROOT / "notebooks"
STUB = '''# Exercise: your turn. Write your solution here, then check it with book.answer(…) above.
raise NotImplementedError("{message}")'''


def stub_for(source: str) -> str:
    """Return the stub that replaces a solution cell whose code is ``source``: it names the
    exercises the solution checks and gives their first hints (``book.hint(ID, 2)`` shows the next)."""
    ids = list(dict.fromkeys(re.findall(r'book\.answer\(\s*"([^"]+)"', source)))
    hints = " ".join(f'{i}: {EXERCISES[i].hints[0]} (more: book.hint("{i}", 2))' for i in ids if i in EXERCISES)
    message = (f"exercise {', '.join(ids)}. Hint: {hints}" if ids else "exercise: write your own solution")
    if any(i in EXERCISES and EXERCISES[i].kind != "value" for i in ids):
        message += (" To check your prediction, walk the packet: book.send(demo, origin, dst, dport, …), then "
                    "book.devices (hosts=True names each device's namespace), book.decision (after a goto, the goto rule "
                    "decides) or book.ending.")
    return STUB.format(message=message.replace("\\", "\\\\").replace('"', '\\"'))


def student_notebook(path: Path) -> nbformat.NotebookNode:
    """Return the student version of chapter ``path``: solution cells stubbed, outputs cleared."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if "solution" in tags:
            cell.source = stub_for(cell.source)
            cell.metadata["tags"] = [t for t in tags if t not in ("solution", "hide-cell")] + ["stub"]
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def write_student(out: Path, notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Write the student version of every chapter into ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(notebooks.glob("*.ipynb")):
        target = out / path.name
        nbformat.write(student_notebook(path), target)
        written.append(target)
    return written


QUICKSTART = ROOT / "book" / "quickstart.md"
RELEASE_FILES = ("pyproject.toml", "requirements.txt", "README.md")


def write_release(out: Path, student: Path) -> Path:
    """Write the workshop zip into ``out``: the student notebooks (from ``student``), data/,
    the ambientlab package (to install), and the quick start; return the zip's path."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"ambientlab-workshop-{__version__}.zip"
    top = f"ambientlab-workshop-{__version__}"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(QUICKSTART, f"{top}/QUICKSTART.md")
        for name in RELEASE_FILES:
            zf.write(ROOT / name, f"{top}/{name}")
        for path in sorted(student.glob("*.ipynb")):
            zf.write(path, f"{top}/notebooks/{path.name}")
        for folder in ("data", "src/ambientlab"):
            for path in sorted((ROOT / folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, f"{top}/{path.relative_to(ROOT)}")
    return target
