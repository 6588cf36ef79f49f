"""Benchmark: what the book costs its reader. In a fresh copy of the working tree (tracked and
untracked files, nothing git ignores: no venv, no build), as from a fresh clone: `make book`
(creating the venv and installing requirements.txt, pip's cache warm, then building), `make book`
again (the build alone), `make test` (the whole suite), and the built site's size; and each
notebook's execution time in a fresh kernel."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"make_book_fresh_s": 60.0, "make_book_s": None, "make_test_s": 180.0, "notebooks_total_s": 30.0, "site_mb": 30.0,
         "walk_page_max_mb": 5.0}
WALK_PAGES = ("08", "09", "10", "11", "12", "13", "14", "15")  # the chapters that walk packets (step-throughs)
# a local file a page loads: an image, a script, a style sheet or a preload (no scheme: not data:, not http:)
_REFERENCE = re.compile(r'<(?:img|script|link)\b[^>]*?\b(?:src|href)="([^"#?:]+)["#?]')


def page_mb(page: Path) -> float:
    """Return what a first visit to built page ``page`` loads, in MB: the page (its step-throughs'
    figures are inside it) and every local file its ``img``, ``script`` and ``link`` elements name
    (images, scripts, style sheets, fonts preloaded); links to other pages do not count."""
    files = {page.resolve()}
    for name in _REFERENCE.findall(page.read_text()):
        target = (page.parent / name).resolve()
        if target.is_file() and target.suffix != ".html":  # <link rel="next|prev|alternate">: another page
            files.add(target)
    return sum(f.stat().st_size for f in files) / 1e6


def _copy(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        if not (ROOT / name).is_file():  # deleted in the work tree, not yet in git
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)


def _timed(argv: list[str], cwd: Path, must_pass: bool = True) -> tuple[float, bool]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0 and must_pass:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.returncode == 0


def notebook_seconds() -> dict[str, float]:
    """Return {notebook: seconds to execute it top to bottom in a fresh kernel}."""
    out = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
        out[path.stem] = time.perf_counter() - start
    return out


def measure(with_test: bool = True) -> dict[str, Any]:
    """Return the seconds of make book from a fresh copy (venv included), of make book again and
    of make test, the site's size (MB) and pages, the walk pages' weights (MB, :func:`page_mb`; the
    largest against its goal), and per-notebook seconds."""
    with tempfile.TemporaryDirectory(prefix="ambientlab-bench-") as tmp:
        copy = Path(tmp) / "repo"
        _copy(copy)
        found: dict[str, Any] = {"make_book_fresh_s": _timed(["make", "book"], copy)[0]}
        shutil.rmtree(copy / "_build")
        found["make_book_s"] = _timed(["make", "book"], copy)[0]
        site = copy / "_build" / "html"
        found["site_mb"] = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6
        found["site_pages"] = sum(1 for p in site.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)
        walks = {p.stem: page_mb(p) for p in sorted((site / "notebooks").glob("*.html")) if p.stem[:2] in WALK_PAGES}
        found["walk_page_max_mb"] = max(walks.values())
        found["walk_pages_mb"] = walks
        if with_test:  # timed whether or not it passes; whether it passed is recorded too
            found["make_test_s"], passed = _timed(["make", "test"], copy, must_pass=False)
            found["make_test_passed"] = int(passed)
    per = notebook_seconds()
    found["notebooks_total_s"] = sum(per.values())
    found["notebooks"] = per
    return found
