"""Real outputs recorded by other people (tests/fixtures/world, sources in SOURCES.md): every
file parses, and the kinds that render back give the text back."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambientlab import ParseError
from ambientlab.core.parse import parse, render_iptables_save, render_route, render_rule, to_records

WORLD = Path(__file__).parent / "fixtures" / "world"
FILES = sorted(p for p in WORLD.glob("*/*") if p.is_file())
CUT = {"ipset/kubernetes-ipset-test-output.txt", "iptables-save/nova-privsep-test-security-table.txt"}  # no final newline
# Real files that are rightly rejected (what they hold is not what the tool prints, or not parsed
# on purpose): the line of the error and a word of its reason.
REJECTED = {
    "ip-addr/explain-cli-output-flattened.txt": (2, "expected 'INDEX:'"),
    "ip-route/sonic-evpn-vrf-encap.txt": (1, "unknown ip route keyword: 'encap'"),
    "ip-route/srv6-lab-ip-6-r.txt": (8, "unknown ip route keyword: 'encap'"),
    "kubectl/kubectl-notes-wide-hand-aligned.txt": (2, "is not aligned"),
}
ACCEPTED = [p for p in FILES if f"{p.parent.name}/{p.name}" not in REJECTED]


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _words(text: str) -> list[list[str]]:
    return [line.split() for line in text.split("\n") if line.strip()]


def test_every_file_is_named_in_the_sources() -> None:
    sources = (WORLD / "SOURCES.md").read_text()
    for path in FILES:
        assert _name(path) in sources, path


@pytest.mark.parametrize("path", ACCEPTED, ids=_name)
def test_real_output_parses_and_renders_back(path: Path) -> None:
    kind = path.parent.name
    text = path.read_text()
    parsed = parse(kind, text, _name(path), cut=_name(path) in CUT)
    if kind == "ip-rule":
        assert _words("\n".join(render_rule(r) for r in to_records(kind, parsed))) == _words(text)
    elif kind in ("ip-route", "route-get"):
        assert _words("\n".join(render_route(r) for r in to_records(kind, parsed))) == _words(text)
    elif kind == "iptables-save":
        assert render_iptables_save(parsed, comments=True) == text + ("\n" if not text.endswith("\n") else "")
    else:
        assert len(to_records(kind, parsed)) > 0


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_real_output_names_file_line_and_reason(name: str) -> None:
    line, reason = REJECTED[name]
    with pytest.raises(ParseError) as err:
        parse(name.split("/")[0], (WORLD / name).read_text(), name)
    assert err.value.line == line and str(err.value).startswith(f"{name}:{line}: ") and reason in str(err.value)


def test_a_cut_file_needs_cut() -> None:
    for name in CUT:
        text = (WORLD / name).read_text()
        with pytest.raises(ParseError, match=rf"{name}:{text.count(chr(10)) + 1}: the last line has no newline"):
            parse(name.split("/")[0], text, name)


def test_count() -> None:
    tried = len(FILES)
    parsed = 0
    for path in FILES:
        try:
            parse(path.parent.name, path.read_text(), _name(path), cut=_name(path) in CUT)
            parsed += 1
        except ParseError:
            pass
    assert (tried, parsed) == (53, 49)
