"""The book builds with zero warnings (Sphinx -W -n), executing every notebook; the built site
refers to no other host, and its internal links and anchors resolve."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from bs4 import BeautifulSoup

pytestmark = pytest.mark.book
LOCAL = ("", "127.0.0.1", "localhost")


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)


@functools.cache
def _soup(path: Path) -> BeautifulSoup:
    """Return the parsed page, parsed once per test run (the tests only read it)."""
    return BeautifulSoup(path.read_text(), "html.parser")


def test_book_builds_without_warnings(built_book: Path) -> None:
    page = (built_book / "notebooks" / "01-the-demo-cluster.html").read_text()
    assert "ztunnel-pods-ips" in page and "[recorded]" in page
    assert len(_pages(built_book)) >= 20


def test_no_page_loads_anything_from_another_host(built_book: Path) -> None:
    found = []
    for page in _pages(built_book):
        soup = _soup(page)
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src")):
            for node in soup.find_all(tag):
                url = node.get(attr)
                if url and urlparse(url).hostname not in (None, *LOCAL) and not (tag == "link" and "canonical" in node.get("rel", [])):
                    found.append(f"{page.relative_to(built_book)}: <{tag} {attr}={url}>")
    for css in built_book.rglob("*.css"):
        found += [f"{css.relative_to(built_book)}: url({u})" for u in re.findall(r"url\(['\"]?(https?://[^)'\"]+)", css.read_text())]
    assert not found, "\n".join(found[:20])


def test_internal_links_and_anchors_resolve(built_book: Path) -> None:
    ids: dict[Path, set[str]] = {}
    broken = []
    for page in _pages(built_book):
        for a in _soup(page).find_all("a", href=True):
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
                    soup = _soup(target)
                    ids[target] = {n["id"] for n in soup.find_all(id=True)} | {n["name"] for n in soup.find_all(attrs={"name": True})}
                if unquote(parsed.fragment) not in ids[target]:
                    broken.append(f"{page.relative_to(built_book)}: {href} (no anchor)")
    assert not broken, "\n".join(broken[:30])


def test_external_links_are_well_formed(built_book: Path) -> None:
    bad = []
    count = 0
    for page in _pages(built_book):
        for a in _soup(page).find_all("a", href=True):
            parsed = urlparse(a["href"])
            if parsed.scheme in ("http", "https"):
                count += 1
                if not parsed.hostname or "." not in parsed.hostname or " " in a["href"]:
                    bad.append(f"{page.relative_to(built_book)}: {a['href']}")
    assert count > 0 and not bad, bad
