"""The book's page on the chapters' API (``book/api.md``): every name of :mod:`ambientlab.book`,
what it returns (the first sentence of its docstring) and the chapter that first uses it, found
by reading the chapters' code. ``python -m ambientlab.book.apidoc`` prints the page;
``tests/test_layers.py`` checks that the committed page is current."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"
HEADER = """# The chapters' API

Every chapter starts with the same two lines, `from ambientlab import book` and
`demo = book.chapter("NN")`, and then uses the names below. Each is a function or a value of the
module `ambientlab.book` (its source is `src/ambientlab/book/__init__.py`); `help(book.NAME)` in a
notebook shows its whole docstring. "Chapter" is the chapter whose code uses it first: read it
there to see it at work. A name no chapter uses is there for your own notebooks.

| name | kind | chapter | what it does |
|---|---|---|---|
"""


def chapters(folder: Path = NOTEBOOKS) -> dict[str, tuple[str, str]]:
    """Return {chapter number: (its title, the code of its cells)} for the numbered chapters."""
    out = {}
    for path in sorted(folder.glob("[0-9][0-9]-*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        title = next((ln.removeprefix("# ").strip() for c in cells if c["cell_type"] == "markdown"
                      for ln in "".join(c["source"]).splitlines() if ln.startswith("# ")), path.stem)
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        out[path.name[:2]] = (title, code)
    return out


def first_uses(folder: Path = NOTEBOOKS) -> dict[str, str]:
    """Return {name: number of the first chapter whose code uses ``book.NAME``}."""
    found: dict[str, str] = {}
    for number, (_, code) in chapters(folder).items():
        for name in re.findall(r"\bbook\.(\w+)", code):
            found.setdefault(name, number)
    return found


def _summary(value: object) -> str:
    """Return the first sentence of ``value``'s docstring, in Markdown."""
    doc = inspect.getdoc(value) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    sentence = re.match(r"(.+?\.)(\s+[A-Z]|$)", first)
    text = sentence.group(1) if sentence else first
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?(\w+)`", r"`\1`", text)  # :func:`~a.b.name` -> `name`
    return text.replace("``", "`").replace("|", "\\|")


def _kind(value: object) -> str:
    if inspect.isclass(value):
        return "class"
    if callable(value):
        return "function"
    return "value"


def api_page(folder: Path = NOTEBOOKS) -> str:
    """Return the Markdown of the API page: one row per name of ``ambientlab.book.__all__``, in
    the order the chapters introduce them (unused names last, by name)."""
    from ambientlab import book

    uses = first_uses(folder)
    files = {p.name[:2]: p.name for p in folder.glob("[0-9][0-9]-*.ipynb")}
    titles = {n: title.replace('"', "'") for n, (title, _) in chapters(folder).items()}
    names = sorted(book.__all__, key=lambda n: (uses.get(n, "99"), n.lower()))
    rows = []
    for name in names:
        value = getattr(book, name)
        where = f'[{uses[name]}](../notebooks/{files[uses[name]]} "{titles[uses[name]]}")' if name in uses else "(none)"
        summary = _summary(value) if _kind(value) != "value" else _value_note(name)
        rows.append(f"| `{name}` | {_kind(value)} | {where} | {summary} |")
    return HEADER + "\n".join(rows) + "\n"


def _value_note(name: str) -> str:
    return {
        "PIECES": "The pieces of the 2022 node that a walk can be played without: {name: piece}.",
        "WALKS": "The named walks of both designs: {name: walk}, each with its design and its doc.",
        "WORLD": "The tracer's name for everything outside the node (the rest of the cluster).",
        "VARIABLE": "`AMBIENTLAB_CAPTURE`, the environment variable that points the chapters at your own capture.",
    }.get(name, "")


if __name__ == "__main__":
    print(api_page(), end="")
