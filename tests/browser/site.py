"""The whole site in a browser, one edition at a time: what test_site.py (English) and
test_site_zh.py (Chinese) run, each in its own pytest-xdist worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from benchmarks.book import WALK_PAGES
from tests.browser.pages import CJK_FONTS, SCREENSHOTS, Visit, check_page, edition_of, fonts_of, site_pages, step_through
from tests.conftest import ROOT


def check_edition(browser: Any, server: str, built_book: Path, edition: str) -> None:
    """Visit every page of ``edition`` ("" or "zh/") of the site that ``server`` serves from
    ``built_book``, and fail on any problem (the checks of :func:`check_page`, every step-through, a
    Chinese page drawn without a CJK font, an image or a step-through missing, a screenshot not taken)."""
    pages = site_pages(built_book, edition)
    assert len(pages) >= 20
    problems = []
    images = players = stepped = 0  # on the chapters' pages
    # One context for all pages, as a reader has: the first page is a first visit (empty cache and
    # storage), and the others load the theme's files from the cache. Pages load four at a time
    # (Chromium spends about 0.7 s of script and layout on each, whatever the server).
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    first, rest = pages[:1], pages[1:]
    for batch in [first, *(rest[i:i + 4] for i in range(0, len(rest), 4))]:
        visits = [(name, Visit(browser, server + name, context, wait_until="commit")) for name in batch]
        for name, visit in visits:
            try:
                visit.page.wait_for_load_state("load")
                if name == edition + "index.html":  # the root page only redirects to the book's first page
                    visit.page.wait_for_url(f"**/{edition}book/intro.html", timeout=10000)
                    visit.page.wait_for_load_state("load")
                problems += check_page(visit, name)
                if name in SCREENSHOTS.values():
                    target = shots / f"{next(k for k, v in SCREENSHOTS.items() if v == name)}.png"
                    visit.page.screenshot(path=str(target), full_page=True)
                    assert target.stat().st_size > 20_000, target
                chapter = name.removeprefix(edition)
                if chapter.startswith("notebooks/") and chapter.split("/")[1][:2] in WALK_PAGES:  # every step-through steps
                    done, found = step_through(visit.page, name)
                    stepped += done
                    problems += found
                if edition and name not in (edition + "index.html", edition + "search.html"):  # Chinese in a CJK font, not boxes
                    fonts = fonts_of(visit.page, "article p")
                    if not any(family.startswith(CJK_FONTS) and glyphs for family, glyphs in fonts.items()):
                        problems.append(f"{name}: the first paragraph is drawn in {fonts}, no CJK font")
                if chapter.startswith("notebooks/"):  # figures; a step-through's figure is counted apart
                    images += visit.page.evaluate("document.images.length - document.querySelectorAll('.al-player img').length")
                    players += visit.page.evaluate("document.querySelectorAll('.al-player img').length")
            finally:
                visit.close()
    context.close()
    assert not problems, "\n".join(problems[:40])
    figures = sum(1 for nb in (ROOT / "notebooks").glob("*.ipynb") for cell in nbformat.read(nb, 4).cells
                  for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))
    assert images == figures > 5, (images, figures)
    stored = sum("".join(out.get("data", {}).get("text/html", "")).count('<div class="al-player"')
                 for nb in (ROOT / "notebooks").glob("*.ipynb") for cell in nbformat.read(nb, 4).cells
                 for out in cell.get("outputs", []))
    assert players == stored > 30, (players, stored)
    assert stepped >= 40, stepped
    taken = {k for k, v in SCREENSHOTS.items() if edition_of(v) == edition}
    assert {p.stem for p in shots.glob("*.png")} >= taken
