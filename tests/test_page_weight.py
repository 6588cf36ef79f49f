"""The benchmark's page weight (benchmarks/book.py): what a first visit loads, links to other pages
left out."""

from __future__ import annotations

from pathlib import Path

from benchmarks.book import page_mb


def test_a_page_weighs_itself_and_what_it_loads_not_what_it_links(tmp_path: Path) -> None:
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "theme.css").write_bytes(b"x" * 200_000)
    (tmp_path / "_static" / "app.js").write_bytes(b"x" * 300_000)
    (tmp_path / "figure.png").write_bytes(b"x" * 400_000)
    (tmp_path / "other.html").write_bytes(b"x" * 5_000_000)
    page = tmp_path / "page.html"
    text = ('<link rel="stylesheet" href="_static/theme.css?v=1"><script src="_static/app.js"></script>'
            '<img alt="a" src="figure.png"><img src="data:image/svg+xml;base64,AAAA"><img src="figure.png">'
            '<a href="other.html">next</a><script src="https://cdn.example/x.js"></script>'
            '<link rel="next" href="other.html"><link rel="alternate" hreflang="zh-CN" href="other.html" />')
    page.write_text(text)
    assert page_mb(page) == (len(text) + 900_000) / 1e6
