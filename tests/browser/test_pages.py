"""Single pages of the built book in headless Chromium: pages work from file:// too (a walk page's
step-throughs included, in both editions), search finds "ztunnel" and, in the Chinese edition,
策略路由; each page links to its twin in the other edition; hidden solutions open on click; and a
request for another host is seen and stays on this machine. (Every page, and the screenshots:
test_site.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.pages import Visit, check_page, step_through

pytestmark = pytest.mark.browser


def test_pages_work_from_file_urls_too(browser: Any, built_book: Path) -> None:
    problems = []
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    for name in ("book/intro.html", "notebooks/08-walk-same-node.html", "book/workshop.html", "zh/notebooks/08-walk-same-node.html"):
        visit = Visit(browser, (built_book / name).as_uri(), context)
        try:
            problems += check_page(visit, f"file://…/{name}")
            if "notebooks/08" in name:  # a walk page: its step-throughs work from file:// too
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


def test_chinese_search_finds_policy_routing(browser: Any, server: str) -> None:
    """策略路由 (policy routing) is one word of the Chinese index (the glossary's terms are jieba's
    user dictionary), so the search finds the pages that teach it, the primer first among them."""
    visit = Visit(browser, server + "zh/search.html?q=" + quote("策略路由"))
    try:
        visit.page.wait_for_selector("#search-results ul li", timeout=15000)
        links = visit.page.locator("#search-results ul li a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert len(links) >= 3 and any("02-primer" in link for link in links), links
        assert not visit.errors and not visit.outside
    finally:
        visit.close()


def test_each_page_links_to_its_twin_in_the_other_edition(browser: Any, server: str) -> None:
    visit = Visit(browser, server + "notebooks/05-rules-and-tables.html")
    try:
        visit.page.locator("p.edition-switch a").click()
        visit.page.wait_for_url("**/zh/notebooks/05-rules-and-tables.html")
        assert visit.page.locator("html").get_attribute("lang") == "zh-CN"
        visit.page.locator("p.edition-switch a").click()
        visit.page.wait_for_url("**/notebooks/05-rules-and-tables.html")
        assert "/zh/" not in visit.page.url and not visit.errors
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
