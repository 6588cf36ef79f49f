"""Real outputs recorded by other people (tests/fixtures/world, sources in SOURCES.md): every
file parses, and the kinds that render back give the text back."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambientlab import ParseError
from ambientlab.core.parse import parse, render_iptables_save, render_route, render_rule, to_records

WORLD = Path(__file__).parent / "fixtures" / "world"
FILES = sorted(p for p in WORLD.glob("*/*") if p.is_file())
CUT = {"ipset/kubernetes-ipset-test-output.txt"}  # published without a final newline


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _words(text: str) -> list[list[str]]:
    return [line.split() for line in text.split("\n") if line.strip()]


def test_every_file_is_named_in_the_sources() -> None:
    sources = (WORLD / "SOURCES.md").read_text()
    for path in FILES:
        assert _name(path) in sources, path


@pytest.mark.parametrize("path", FILES, ids=_name)
def test_real_output_parses_and_renders_back(path: Path) -> None:
    kind = path.parent.name
    text = path.read_text()
    parsed = parse(kind, text, _name(path), cut=_name(path) in CUT)
    if kind == "ip-rule":
        assert _words("\n".join(render_rule(r) for r in to_records(kind, parsed))) == _words(text)
    elif kind in ("ip-route", "route-get"):
        rendered = "\n".join(render_route(r) for r in to_records(kind, parsed))
        assert [ln.rstrip(" ") for ln in rendered.split("\n")] == [ln.rstrip(" ") for ln in text.split("\n")[:-1] if ln.strip()]
    elif kind == "iptables-save":
        assert render_iptables_save(parsed, comments=True) == text
    else:
        assert len(parsed.sets) and to_records(kind, parsed)


def test_a_cut_file_needs_cut() -> None:
    (name,) = CUT
    with pytest.raises(ParseError, match=rf"{name}:9: the last line has no newline"):
        parse("ipset", (WORLD / name).read_text(), name)


def test_count() -> None:
    tried = len(FILES)
    parsed = 0
    for path in FILES:
        try:
            parse(path.parent.name, path.read_text(), _name(path), cut=_name(path) in CUT)
            parsed += 1
        except ParseError:
            pass
    assert (tried, parsed) == (13, 13)
