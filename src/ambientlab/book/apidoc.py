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
`demo = book.chapter("NN")`, and then uses the names below, each as `book.NAME`. `help(book.NAME)`
in a notebook shows a name's whole docstring; "defined in" says where its code is, under
`src/ambientlab/`. "Chapter" is the chapter whose code uses it first: read it there to see it at
work. A name no chapter uses is there for your own notebooks.

| name | chapter | what it does | defined in |
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
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?(\w+)`", r"`\1`", text)  # :func:`~a.b.name` -> `name` (before a role's ':' ends a clause)
    if len(text) > 160:  # a long first sentence: up to its first clause outside brackets
        depth = 0
        for i, char in enumerate(text):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char in ";:" and depth == 0 and i >= 40:
                text = text[:i] + " …"
                break
    return text.replace("``", "`").replace("|", "\\|")


def _call(name: str, value: object) -> str:
    """Return ``name(arguments)`` for a function or class (defaults shown), else ``name``."""
    if not callable(value):
        return name
    try:
        params = inspect.signature(value).parameters.values()
    except (TypeError, ValueError):
        return f"{name}(…)"
    shown = []
    for p in params:
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        default = "" if p.default is p.empty else f"={p.default!r}"
        shown.append(f"{prefix}{p.name}{default}")
    return f"{name}({', '.join(shown)})"


def _home(value: object) -> str:
    """Return the file that defines ``value`` (relative to ``src/ambientlab/``), or empty for a value."""
    import sys

    module = sys.modules.get(getattr(value, "__module__", "")) if callable(value) else None
    where = Path(getattr(module, "__file__", "") or "")
    base = Path(__file__).resolve().parents[1]
    return f"`{where.resolve().relative_to(base)}`" if where.is_relative_to(base) else ""


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
        rows.append(f"| `{_call(name, value)}` | {where} | {summary} | {_home(value)} |")
    return HEADER + "\n".join(rows) + "\n"


def _value_note(name: str) -> str:
    return {
        "PIECES": "The pieces of the 2022 node that a walk can be played without: {name: piece}.",
        "WALKS": "The named walks of every design: {name: walk}, each with its design and its doc.",
        "WORLD": "The tracer's name for everything outside the node (the rest of the cluster).",
        "VARIABLE": "`AMBIENTLAB_CAPTURE`, the environment variable that points the chapters at your own capture.",
    }.get(name, "")


if __name__ == "__main__":
    print(api_page(), end="")
