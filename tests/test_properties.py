"""Property tests: rendered rules and routes parse back to themselves, and garbage is never
silently accepted."""

from __future__ import annotations

import ipaddress

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.ip_route import _fast_fields, _read_routes, parse_ip_route_records, render_route
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


# The fast path of the route parser (one regular expression for the common IPv4 lines) must
# give exactly what the token loop gives, and only for lines that the token loop accepts.
FAST_WORDS = st.sampled_from([
    "default", "10.0.0.0/8", "10.0.0.0/08", "10.0.0.0/33", "10.0.0.0/0", "1.2.3.4", "255.255.255.255", "256.1.1.1",
    "01.2.3.4", "1.2.3", "1.2.3.4.5", "fe80::1", "::/0", "via", "dev", "table", "proto", "scope", "src", "metric",
    "blackhole", "local", "unicast", "onlink", "linkdown", "dead", "eth0", "d0", "-x", "a/b", "x\x0cy", "main", "100",
    "0", "00", "4294967295", "4294967296", "999999999", "1000000000", "255", "256", "kernel", "link", "lo", "mtu",
    "weight", "nexthop", "", " ", "\t", "\r", "é",
])


@st.composite
def route_lines(draw):  # type: ignore[no-untyped-def]
    if draw(st.booleans()):  # a rendered route, perhaps with one word replaced, dropped or inserted
        words = render_route(draw(routes())).split(" ")
        at = draw(st.integers(0, len(words)))
        how = draw(st.sampled_from(["keep", "replace", "drop", "insert"]))
        if how == "replace" and at < len(words):
            words[at] = draw(FAST_WORDS)
        elif how == "drop" and at < len(words):
            del words[at]
        elif how == "insert":
            words.insert(at, draw(FAST_WORDS))
        return " ".join(words) + draw(st.sampled_from(["", " ", "  ", "\t"]))
    return " ".join(draw(st.lists(FAST_WORDS, min_size=1, max_size=12)))


@settings(max_examples=600)
@given(route_lines())
def test_fast_route_lines_are_read_as_the_token_loop_reads_them(line: str) -> None:
    text = line + "\n"
    try:
        slow = _read_routes(text, "f.txt", False, False, fast=False)
    except ParseError as err:
        assert _fast_fields(line) is None, f"the fast path accepts {line!r}, which the token loop rejects: {err}"
        with pytest.raises(ParseError) as again:
            _read_routes(text, "f.txt", False, False)
        assert str(again.value) == str(err)
        return
    fast = _read_routes(text, "f.txt", False, False)
    assert fast.records() == slow.records()
    pd.testing.assert_frame_equal(fast.frame(), slow.frame(), check_exact=True)


def test_the_fast_path_reads_the_common_lines() -> None:
    lines = ["10.0.0.0/24 via 192.0.2.92 dev d0 metric 64 ", "default via 172.18.0.1 dev eth0 ",
             "10.244.2.10 dev veth6cc9a213 scope link ", "blackhole 10.0.24.0/24 ",
             "192.0.2.0/24 dev d0 proto kernel scope link src 192.0.2.1 linkdown ",
             "local 10.244.2.1 dev cni0 table local proto kernel scope host src 10.244.2.1 "]
    assert all(_fast_fields(line) for line in lines)
    assert _fast_fields("default onlink onlink") is None  # the token loop's "flag repeated"
    text = "".join(line + "\n" for line in lines)
    assert not _read_routes(text, "f.txt", False, False).slow  # every line read by the fast path
    assert _read_routes(text, "f.txt", False, False).records() == _read_routes(text, "f.txt", False, False, fast=False).records()


def test_fast_and_token_loop_agree_on_mixed_texts() -> None:
    text = ("default via 10.0.0.1 dev eth0 \n10.15.0.0/16 proto static \n\tnexthop via 10.0.0.2 dev v0 weight 1\n"
            "fe80::/64 dev eth0 proto kernel metric 256 pref medium\n\n10.1.0.0/16 dev eth0 onlink \n")
    fast, slow = (_read_routes(text, "f.txt", False, False, fast=f) for f in (True, False))
    assert len(fast.slow) == 2 and fast.records() == slow.records() and list(fast.numbers) == [1, 2, 4, 6]
    pd.testing.assert_frame_equal(fast.frame(), slow.frame(), check_exact=True)
    with pytest.raises(ParseError, match=r"f\.txt:2: flag repeated: 'onlink'"):
        _read_routes("10.0.0.0/8 dev a \n10.1.0.0/16 dev eth0 onlink onlink\n", "f.txt", False, False)
