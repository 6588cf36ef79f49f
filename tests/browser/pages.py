"""What the browser tests share: Chromium's place and flags, one visit to a page with what it
logged, asked for, and was refused, and a walk page's step-throughs clicked through."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tests.conftest import book_module

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Every request for another host goes to a closed port on this machine (Chromium sends loopback
# requests directly): nothing leaves the machine, and the pages' requests are recorded, not
# intercepted one by one, which kept the browser waiting on Python for each of ~1,000 files.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--proxy-server=http://127.0.0.1:9"]
SCREENSHOTS = {"index": "book/intro.html", "walk-same-node": "notebooks/08-walk-same-node.html",
               "live-lab": "notebooks/13-live-lab.html", "workshop": "book/workshop.html",
               "zh-index": "zh/book/intro.html", "zh-walk-same-node": "zh/notebooks/08-walk-same-node.html",
               "zh-glossary": "zh/book/glossary.html"}
EDITIONS = {"": "Ambient redirection, computed", "zh/": book_module("book/build.py").EDITIONS["zh"]["html_title"]}
# The fonts a page's text may be drawn with where it is Chinese: a CJK font, never a fallback box.
CJK_FONTS = ("Noto Sans CJK", "Noto Serif CJK")


def site_pages(html: Path, edition: str | None = None) -> list[str]:
    """Return the site's pages (relative paths), all or those of ``edition`` ("" or "zh/")."""
    pages = sorted(str(p.relative_to(html)) for p in html.rglob("*.html")
                   if "_static" not in p.parts and "_sources" not in p.parts)
    return pages if edition is None else [p for p in pages if edition_of(p) == edition]


def edition_of(name: str) -> str:
    """Return the edition a page of the site belongs to: "zh/" or "" (English, the root)."""
    return "zh/" if name.startswith("zh/") else ""


def fonts_of(page: Any, selector: str) -> dict[str, int]:
    """Return {font family: glyphs drawn with it} for the text of the first element ``selector``
    matches, as Chromium rendered it (DevTools' CSS.getPlatformFontsForNode)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": 1})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    finally:
        cdp.detach()
    return {f["familyName"]: f["glyphCount"] for f in fonts}


class Visit:
    """One page opened in a fresh browser context (or a new tab of ``context``), with what it
    logged and asked for."""

    def __init__(self, browser: Any, url: str, context: Any = None, wait_until: str = "load") -> None:
        self.own = context is None
        self.context = context or browser.new_context(viewport={"width": 1300, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.missing: list[str] = []  # answered with an HTTP error
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)
        self.page.on("response", lambda r: self.missing.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        self.page.goto(url, wait_until=wait_until)

    def _request(self, request: Any) -> None:
        url = request.url
        if not (url.startswith(("file:", "data:", "blob:", "about:")) or urlparse(url).hostname in ("127.0.0.1", "localhost")):
            self.outside.append(url)

    def close(self) -> None:
        self.page.close()
        if self.own:
            self.context.close()


def check_page(visit: Visit, name: str) -> list[str]:
    page = visit.page
    problems = []
    if EDITIONS[edition_of(name.rpartition("…/")[2])] not in page.title() or not page.locator("h1").first.inner_text().strip():
        problems.append(f"{name}: title {page.title()!r}")
    if page.locator("#pst-primary-sidebar nav a").count() < 10 or not page.locator("#pst-primary-sidebar").is_visible():
        problems.append(f"{name}: no sidebar with the table of contents")
    broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    problems += [f"{name}: image not loaded: {src}" for src in broken]
    problems += [f"{name}: console: {e}" for e in visit.errors]
    problems += [f"{name}: {m}" for m in visit.missing]
    problems += [f"{name}: asked another host for {u}" for u in visit.outside]
    return problems


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


def step_through(page: Any, name: str) -> tuple[int, list[str]]:
    """Click each step-through of ``page`` one step forward and one back; return how many were
    stepped and the problems: step 1 shown first, step 2's caption and count (in the page's
    language) after the click, step 2 of the story's list marked, step 1 again after the click back."""
    problems, stepped = [], 0
    counted = "第 {k} 步，共 {n} 步" if page.evaluate("document.documentElement.lang").startswith("zh") else "step {k} of {n}"
    for seen in page.evaluate(_STEP_ALL):
        frames = seen["frames"]
        if len(frames) < 2:
            continue
        n = len(frames)
        if (seen["first"], seen["second"], seen["back"]) != tuple(counted.format(k=k, n=n) for k in (1, 2, 1)):
            problems.append(f"{name}: counts {seen['first']!r}, {seen['second']!r}, {seen['back']!r}")
        expected = html.unescape(re.sub(r"<[^>]+>", "", frames[1]["caption"].replace("<br>", " ")))
        if " ".join(seen["caption"].split()) != " ".join(expected.split()):
            problems.append(f"{name}: caption {seen['caption']!r}, expected {expected!r}")
        if (seen["now"], seen["index"]) != (1, 1):  # the story's list follows the current step
            problems.append(f"{name}: list marks {seen['now']} item(s), at {seen['index']}")
        stepped += 1
    return stepped, problems
