"""Single pages of the built book in headless Chromium: pages work from file:// too, search finds
"ztunnel", hidden solutions open on click, and a request for another host is seen and stays on
this machine. (Every page, and the screenshots: test_site.py.)"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.book import WALK_PAGES
from tests.browser.pages import Visit, check_page

pytestmark = pytest.mark.browser


def test_pages_work_from_file_urls_too(browser: Any, built_book: Path) -> None:
    problems = []
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    for name in ("book/intro.html", "notebooks/08-walk-same-node.html", "book/workshop.html"):
        visit = Visit(browser, (built_book / name).as_uri(), context)
        try:
            problems += check_page(visit, f"file://…/{name}")
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


_STEP_ALL = """() => Array.from(document.querySelectorAll('.al-player')).map(p => {
  const frames = JSON.parse(p.querySelector('script.al-frames').textContent);
  const count = () => p.querySelector('.al-count').innerText;
  const first = count();
  p.querySelector('[data-act=next]').click();
  const second = count(), caption = p.querySelector('.al-caption').innerText;
  const now = p.nextElementSibling.querySelectorAll('li.al-now').length;
  const index = Array.from(p.nextElementSibling.children).findIndex(li => li.classList.contains('al-now'));
  p.querySelector('[data-act=prev]').click();
  return {frames: frames, first: first, second: second, caption: caption, now: now, index: index, back: count()};
})"""


def test_every_walk_page_steps_through_its_packets_from_a_file_url(browser: Any, built_book: Path) -> None:
    """Each step-through of each walk page, opened from file://: step 1 shown, one click forward
    shows step 2's caption and marks step 2 of the story's list, one click back returns."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    pages = sorted(p for p in (built_book / "notebooks").glob("*.html") if p.stem[:2] in WALK_PAGES)
    assert len(pages) >= 7
    stepped = 0
    for page_file in pages:
        visit = Visit(browser, page_file.as_uri(), context)
        try:
            for seen in visit.page.evaluate(_STEP_ALL):
                frames, where = seen["frames"], page_file.name
                if len(frames) < 2:
                    continue
                assert (seen["first"], seen["second"], seen["back"]) == \
                    (f"step 1 of {len(frames)}", f"step 2 of {len(frames)}", f"step 1 of {len(frames)}"), where
                expected = html.unescape(re.sub(r"<[^>]+>", "", frames[1]["caption"].replace("<br>", " ")))
                assert " ".join(seen["caption"].split()) == " ".join(expected.split()), where
                assert (seen["now"], seen["index"]) == (1, 1), where  # the story's list follows the current step
                stepped += 1
            assert not visit.errors and not visit.outside, (page_file.name, visit.errors, visit.outside)
        finally:
            visit.close()
    context.close()
    assert stepped >= 30, stepped
