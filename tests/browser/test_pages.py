"""Single pages of the built book in headless Chromium: pages work from file:// too (a walk page's
step-throughs included), search finds
"ztunnel", hidden solutions open on click, and a request for another host is seen and stays on
this machine. (Every page, and the screenshots: test_site.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.pages import Visit, check_page, step_through

pytestmark = pytest.mark.browser


def test_pages_work_from_file_urls_too(browser: Any, built_book: Path) -> None:
    problems = []
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    for name in ("book/intro.html", "notebooks/08-walk-same-node.html", "book/workshop.html"):
        visit = Visit(browser, (built_book / name).as_uri(), context)
        try:
            problems += check_page(visit, f"file://…/{name}")
            if name.startswith("notebooks/08"):  # a walk page: its step-throughs work from file:// too
                stepped, found = step_through(visit.page, name)
                problems += found
                assert stepped >= 5, stepped
        finally:
            visit.close()
    context.close()
    assert not problems, "\n".join(problems)


def test_search_finds_ztunnel(browser: Any, server: str) -> None:
    visit = Visit(browser, server + "search.html?q=ztunnel")
    try:
        visit.page.wait_for_selector("#search-results ul li", timeout=15000)
        hits = visit.page.locator("#search-results ul li").count()
        assert hits >= 5, hits
        assert not visit.errors and not visit.outside
    finally:
        visit.close()


def test_solutions_are_hidden_until_clicked(browser: Any, server: str) -> None:
    visit = Visit(browser, server + "notebooks/05-rules-and-tables.html")
    try:
        cell = visit.page.locator("div.tag_solution details.hide").first
        code = cell.locator("div.cell_input")
        assert cell.get_attribute("open") is None and not code.is_visible()
        cell.locator("summary").click()
        assert cell.get_attribute("open") is not None
        code.wait_for(state="visible", timeout=5000)
        assert "book.answer" in code.inner_text()
    finally:
        visit.close()


def test_a_request_for_another_host_is_seen_and_stays_on_this_machine(browser: Any, server: str) -> None:
    visit = Visit(browser, server + "book/intro.html")
    try:
        failed = visit.page.evaluate("fetch('http://192.0.2.1/x.js').then(() => 'loaded', () => 'failed')")
        assert failed == "failed" and visit.outside == ["http://192.0.2.1/x.js"]
    finally:
        visit.close()
