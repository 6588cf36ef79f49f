"""Property tests: rendered rules and routes parse back to themselves, and garbage is never
silently accepted."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.ip_route import parse_ip_route_records, render_route
from ambientlab.core.parse.ip_rule import parse_ip_rule_records, render_rule

v4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
v6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
hexv = st.integers(0, 2**32 - 1).map(hex)
names = st.tuples(st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
                  st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=10)).map("".join)


@st.composite
def rules(draw):  # type: ignore[no-untyped-def]
    addr = draw(st.sampled_from([v4, v6]))
    rec = {"priority": draw(st.integers(0, 32767)), "src": "all"}
    if draw(st.booleans()):
        rec["not"] = None
    if draw(st.booleans()):
        rec["src"] = draw(addr)
        if draw(st.booleans()):
            rec["srclen"] = draw(st.integers(0, 32))
    if draw(st.booleans()):
        rec["dst"] = draw(addr)
    if draw(st.booleans()):
        rec["fwmark"] = draw(hexv)
        if draw(st.booleans()):
            rec["fwmask"] = draw(hexv)
    for dev in ("iif", "oif"):
        if draw(st.booleans()):
            rec[dev] = draw(names)
            if draw(st.booleans()):
                rec[f"{dev}_detached"] = None
    action = draw(st.sampled_from(["table", "goto", "action"]))
    if action == "table":
        rec["table"] = draw(st.sampled_from(["main", "local", "100", "101", "102"]))
        if draw(st.booleans()):
            rec["suppress_prefixlen"] = draw(st.integers(0, 128))
    elif action == "goto":
        rec["goto"] = draw(st.integers(1, 32767))
        if draw(st.booleans()):
            rec["unresolved"] = None
    else:
        rec["action"] = draw(st.sampled_from(["blackhole", "unreachable", "prohibit"]))
    if draw(st.booleans()):
        rec["protocol"] = draw(st.sampled_from(["static", "kernel", "boot"]))
    return rec


@st.composite
def routes(draw):  # type: ignore[no-untyped-def]
    rec: dict = {}
    kind = draw(st.sampled_from(["unicast", "local", "broadcast", "blackhole", "unreachable", "prohibit", "throw", "multicast"]))
    if kind != "unicast":
        rec["type"] = kind
    rec["dst"] = draw(st.one_of(st.just("default"), v4, v4.map(lambda a: a + "/24"), v6.map(lambda a: a + "/64")))
    if kind == "unicast" and draw(st.booleans()):
        rec["gateway"] = draw(v4)
    if draw(st.booleans()):
        rec["dev"] = draw(names)
    for key, values in (("table", ["100", "101", "102", "local"]), ("protocol", ["kernel", "static"]),
                        ("scope", ["link", "host"])):
        if draw(st.booleans()):
            rec[key] = draw(st.sampled_from(values))
    if draw(st.booleans()):
        rec["prefsrc"] = draw(v4)
    if draw(st.booleans()):
        rec["metric"] = draw(st.integers(0, 2**32 - 1))
    rec["flags"] = draw(st.lists(st.sampled_from(["onlink", "linkdown", "dead"]), unique=True, max_size=2))
    if draw(st.booleans()):
        rec["metrics"] = [{"mtu": draw(st.integers(68, 65535))}]
    return rec


@settings(max_examples=300)
@given(rules())
def test_rendered_rule_parses_back(rec) -> None:  # type: ignore[no-untyped-def]
    assert parse_ip_rule_records(render_rule(rec) + "\n")[0] == [rec]


@settings(max_examples=300)
@given(routes())
def test_rendered_route_parses_back(rec) -> None:  # type: ignore[no-untyped-def]
    assert parse_ip_route_records(render_route(rec) + "\n")[0] == [rec]


JUNK = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Zs", "Cc"]), min_size=1, max_size=12)


def _junk_is_error_or_kept(line: str, parse, rec: dict) -> None:  # type: ignore[no-untyped-def]
    """A junk word after a valid line must raise ParseError on line 1 or change the result."""
    try:
        parsed = parse(line)[0]
    except ParseError as err:
        assert err.line == 1
        return
    assert parsed != [rec], f"junk vanished from {line!r}"


@settings(max_examples=300)
@given(rules(), JUNK)
def test_junk_in_a_rule_is_an_error_or_is_kept(rec, junk: str) -> None:  # type: ignore[no-untyped-def]
    _junk_is_error_or_kept(render_rule(rec) + " " + junk + "\n", parse_ip_rule_records, rec)


@settings(max_examples=300)
@given(routes(), JUNK)
def test_junk_in_a_route_is_an_error_or_is_kept(rec, junk: str) -> None:  # type: ignore[no-untyped-def]
    _junk_is_error_or_kept(render_route(rec) + " " + junk + "\n", parse_ip_route_records, rec)
