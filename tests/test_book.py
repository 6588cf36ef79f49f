"""The book builds with zero warnings (Sphinx -W -n), executing every notebook; the built site
refers to no other host, and its internal links and anchors resolve."""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

pytestmark = pytest.mark.book
LOCAL = ("", "127.0.0.1", "localhost")


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)


class _Page(HTMLParser):
    """What the tests read of a built page: every tag's attributes (tag, attributes), and its ids
    and names. A plain HTMLParser: the walk pages carry megabytes of figures in data URIs, which a
    full parse tree (BeautifulSoup) takes seconds to build."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.ids: set[str] = set()
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.tags.append((tag, found))
        self.ids.update(found[k] for k in ("id", "name") if k in found)

    def find_all(self, tag: str, attr: str) -> list[dict[str, str]]:
        """Return the attributes of every ``tag`` element that has ``attr``."""
        return [found for name, found in self.tags if name == tag and attr in found]


@functools.cache
def _soup(path: Path) -> _Page:
    """Return the page's tags, parsed once per test run (the tests only read them)."""
    return _Page(path.read_text())


def test_book_builds_without_warnings(built_book: Path) -> None:
    page = (built_book / "notebooks" / "01-the-demo-cluster.html").read_text()
    assert "ztunnel-pods-ips" in page and "[recorded]" in page
    assert len(_pages(built_book)) >= 20


def test_no_page_loads_anything_from_another_host(built_book: Path) -> None:
    found = []
    for page in _pages(built_book):
        soup = _soup(page)
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src")):
            for node in soup.find_all(tag, attr):
                url = node[attr]
                if urlparse(url).hostname not in (None, *LOCAL) and not (tag == "link" and "canonical" in node.get("rel", "").split()):
                    found.append(f"{page.relative_to(built_book)}: <{tag} {attr}={url}>")
    for css in built_book.rglob("*.css"):
        found += [f"{css.relative_to(built_book)}: url({u})" for u in re.findall(r"url\(['\"]?(https?://[^)'\"]+)", css.read_text())]
    assert not found, "\n".join(found[:20])


def test_internal_links_and_anchors_resolve(built_book: Path) -> None:
    ids: dict[Path, set[str]] = {}
    broken = []
    for page in _pages(built_book):
        for a in _soup(page).find_all("a", "href"):
            href = a["href"]
            parsed = urlparse(href)
            if parsed.scheme or href.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parsed.path)).resolve() if parsed.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(built_book)}: {href} (no such file)")
                continue
            if parsed.fragment and target.suffix == ".html":
                if target not in ids:
                    ids[target] = _soup(target).ids
                if unquote(parsed.fragment) not in ids[target]:
                    broken.append(f"{page.relative_to(built_book)}: {href} (no anchor)")
    assert not broken, "\n".join(broken[:30])


def test_external_links_are_well_formed(built_book: Path) -> None:
    bad = []
    count = 0
    for page in _pages(built_book):
        for a in _soup(page).find_all("a", "href"):
            parsed = urlparse(a["href"])
            if parsed.scheme in ("http", "https"):
                count += 1
                if not parsed.hostname or "." not in parsed.hostname or " " in a["href"]:
                    bad.append(f"{page.relative_to(built_book)}: {a['href']}")
    assert count > 0 and not bad, bad
