"""Student notebooks and the workshop zip, generated from the chapters.

A chapter's solution cells (tagged ``solution``) become a stub that raises
``NotImplementedError`` with the exercise's first (gentlest) hint and how to ask for the next one
(from :mod:`ambientlab.book.check`); every output is cleared. Instructors keep the full notebooks.

The Chinese kit (``lang="zh"``) carries the Chinese edition's prose: each paragraph, heading, list
item and table cell of a markdown cell is replaced by its translation from the book's catalog
(``locale/zh_CN/LC_MESSAGES/notebooks/NN-….po``, the same one the zh edition is built from); code
is left as it is.
"""

from __future__ import annotations

import functools
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


LANGS = {"en": None, "zh": "zh_CN"}  # a kit's language -> its catalogs' folder in locale/ (English: none)


def catalog(page: str, lang: str) -> dict[str, str]:
    """Return {English message: translation} of the book's page ``page`` (its path without suffix:
    ``notebooks/01-the-demo-cluster``, ``book/quickstart``) in ``lang``, from the book's gettext
    catalog; fuzzy and empty translations are left out."""
    from babel.messages import pofile

    with open(ROOT / "locale" / str(LANGS[lang]) / "LC_MESSAGES" / f"{page}.po", "rb") as f:
        return {str(m.id): str(m.string) for m in pofile.read_po(f) if m.id and m.string and not m.fuzzy}


@functools.cache
def _markdown() -> Any:
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    return create_md_parser(MdParserConfig(enable_extensions={"colon_fence", "deflist"}), RendererHTML)


def _message(text: str) -> str:
    return text.replace("\n", " ").strip()  # as Sphinx's gettext builder keys a message


def translate_markdown(source: str, translate: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """Return (``source`` with each paragraph, heading, list item and table cell replaced by
    ``translate(message)``, the messages ``translate`` had no translation for). Messages are keyed
    as Sphinx's gettext builder keys them; code blocks are kept, a directive's content is translated."""
    lines = source.split("\n")
    missing: list[str] = []
    edits: dict[int, tuple[int, list[str]]] = {}  # first line -> (end line, new lines)
    for token in _markdown().parse(source):
        if token.type == "inline" and token.map and token.content.strip():
            start, end = token.map
            key = _message(token.content)
            if (new := translate(key)) is None:
                missing.append(key)
                continue
            line = edits[start][1][0] if start in edits else lines[start]  # a table row's earlier cells
            first = token.content.split("\n")[0]
            if end - start == 1 and line.count(first) and line.lstrip().startswith("|"):  # a table cell
                cells = re.split(r"(?<!\\)\|", line)
                cells = [c.replace(first, new, 1) if c.strip() == first else c for c in cells]
                edits[start] = (end, ["|".join(cells)])
            else:
                at = line.index(first)
                edits[start] = (end, [line[:at] + new.replace("\n", " ")])
        elif token.type == "colon_fence" and token.map:
            inner, lost = translate_markdown(token.content.rstrip("\n"), translate)
            missing += lost
            start, end = token.map
            edits[start] = (end, [lines[start], *inner.split("\n"), lines[end - 1]])
    for start in sorted(edits, reverse=True):
        end, new_lines = edits[start]
        lines[start:end] = new_lines
    return "\n".join(lines), missing


def _translated(source: str, messages: dict[str, str], name: str, lang: str) -> str:
    text, missing = translate_markdown(source, messages.get)
    if missing:
        raise ValueError(f"{name}: no {lang} translation of {missing[:3]} (run make catalogs, then translate)")
    return text


def student_notebook(path: Path, lang: str = "en") -> nbformat.NotebookNode:
    """Return the student version of chapter ``path``: solution cells stubbed, outputs cleared,
    the prose in ``lang`` ("en", or "zh": translated from the book's catalogs). Raises ValueError
    naming the first messages a catalog lacks."""
    nb = nbformat.read(path, as_version=4)
    if LANGS[lang]:
        messages = catalog(f"notebooks/{path.stem}", lang)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = _translated(cell.source, messages, path.name, lang)
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


def write_student(out: Path, notebooks: Path = NOTEBOOKS, lang: str = "en") -> list[Path]:
    """Write the student version of every chapter, with its prose in ``lang``, into ``out``;
    return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(notebooks.glob("*.ipynb")):
        target = out / path.name
        nbformat.write(student_notebook(path, lang), target)
        written.append(target)
    return written


QUICKSTART = ROOT / "book" / "quickstart.md"
RELEASE_FILES = ("pyproject.toml", "requirements.txt", "README.md")


def write_release(out: Path, student: Path, lang: str = "en") -> Path:
    """Write the workshop zip into ``out``: the student notebooks (from ``student``), data/,
    the ambientlab package (to install), and the quick start (in ``lang``); return the zip's path."""
    out.mkdir(parents=True, exist_ok=True)
    top = f"ambientlab-workshop-{__version__}" + ("" if lang == "en" else f"-{lang}")
    target = out / f"{top}.zip"
    quickstart = QUICKSTART.read_text()
    if LANGS[lang]:
        quickstart = _translated(quickstart, catalog("book/quickstart", lang), QUICKSTART.name, lang)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{top}/QUICKSTART.md", quickstart)
        for name in RELEASE_FILES:
            zf.write(ROOT / name, f"{top}/{name}")
        for path in sorted(student.glob("*.ipynb")):
            zf.write(path, f"{top}/notebooks/{path.name}")
        for folder in ("data", "src/ambientlab"):
            for path in sorted((ROOT / folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, f"{top}/{path.relative_to(ROOT)}")
    return target
