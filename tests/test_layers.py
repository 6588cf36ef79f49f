"""The package's layers: core (parsing, the tracer) -> book (what the chapters use) -> live
(namespaces, the lab, capturing a node) -> cli. No module imports one of a higher layer, there
are no import cycles, and importing the package or starting a lab stand-in loads no pandas."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SRC = ROOT / "src"
LAYERS = ("core", "book", "live", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """Return the rank of ``module``'s layer (None for the package itself)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else None


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.joinpath("ambientlab").rglob("*.py")}


def imports_of(path: Path, known: set[str] | None = None) -> set[str]:
    """Return the ambientlab modules ``path`` imports, anywhere in it (functions included,
    relative imports resolved, and module names in strings, as importlib.import_module takes
    them). ``from package import submodule`` counts as importing the submodule only."""
    known = set(modules()) if known is None else known
    me = module_name(path) if path.is_relative_to(SRC) else ""
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            if not base.startswith("ambientlab"):
                continue
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
            found |= subs
            if len(subs) < len(node.names):
                found.add(base)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ambientlab")}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known - {"ambientlab"}:
            found.add(node.value)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: {i for i in imports_of(p, set(known)) if i in known and i != m} for m, p in known.items()}


def test_every_module_is_in_a_layer() -> None:
    outside = [m for m in graph() if m != "ambientlab" and m.split(".")[1] not in LAYERS]
    assert not outside, f"modules outside core/book/live/cli: {outside}"


def test_no_layer_imports_a_higher_one() -> None:
    wrong = [f"{m} ({LAYERS[layer_of(m)]}) imports {i} ({LAYERS[layer_of(i)]})"
             for m, deps in graph().items() if layer_of(m) is not None
             for i in deps if layer_of(i) is not None and layer_of(i) > layer_of(m)]
    assert not wrong, "\n".join(wrong)


def test_the_package_itself_names_only_core_modules() -> None:
    deps = graph()["ambientlab"]
    assert deps and all(layer_of(d) == 0 for d in deps), deps


def test_there_are_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join([*stack[stack.index(d):], d]))
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_checks_above_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import importlib\n\ndef f():\n    from ambientlab.cli.main import main\n"
                   "    return importlib.import_module('ambientlab.live.netns')\n")
    assert {"ambientlab.cli.main", "ambientlab.live.netns"} <= imports_of(bad)
    assert layer_of("ambientlab.cli.main") > layer_of("ambientlab.core.parse")


@pytest.mark.parametrize("statement", ["import ambientlab", "import ambientlab.live.lab.standin, ambientlab.live.lab.tunnel",
                                       "import ambientlab.core.constants"])
def test_importing_the_package_or_a_stand_in_loads_no_pandas(statement: str) -> None:
    code = f"import sys; {statement}; print(sorted(m for m in ('pandas', 'matplotlib', 'yaml') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_matplotlib_waits_for_the_first_figure() -> None:
    code = "import sys; from ambientlab import book; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def chapter_notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def code_cells(path: Path) -> list[str]:
    import json

    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda p: p.stem)
def test_a_chapter_starts_in_three_lines_and_imports_the_book(path: Path) -> None:
    cells = code_cells(path)
    assert len(cells[0].splitlines()) <= 3, cells[0]
    assert cells[0].startswith("from ambientlab import book\n") and f'book.chapter("{path.name[:2]}")' in cells[0]
    others = {m for cell in cells for m in re.findall(r"^\s*(?:from|import) (ambientlab[\w.]*)", cell, re.M)} - {"ambientlab"}
    assert len(others) <= 2, others  # a chapter about a module may import it


def test_every_name_of_the_book_has_a_docstring_and_the_api_page_is_current() -> None:
    from ambientlab import book
    from ambientlab.book.apidoc import api_page

    for name in book.__all__:
        value = getattr(book, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), name
    assert sorted(book.__all__) == sorted(n for n in vars(book) if not n.startswith("_") and n in book.__all__)
    page = (ROOT / "book" / "api.md").read_text()
    assert page == api_page(), "book/api.md is stale: python -m ambientlab.book.apidoc > book/api.md"
    assert all(f"| `{name}" in page for name in book.__all__)
