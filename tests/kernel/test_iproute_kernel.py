"""The ip rule / ip route parsers against iproute2's own ``-j`` output, on seeded random
configurations built in a network namespace (thousands of records)."""

from __future__ import annotations

import json
import random
import time

import pytest

from ambientlab.core.parse.ip_addr import parse_ip_addr_records
from ambientlab.core.parse.ip_route import parse_ip_route_records, render_route
from ambientlab.core.parse.ip_rule import json_record, parse_ip_rule_records, render_rule
from ambientlab.live.netns import NamespaceSet
from tests.randomconfig import SETUP, extra_route_commands, route_commands, rule_commands

pytestmark = pytest.mark.kernel
SEEDS = [1, 2, 3, 4]


def _configure(ns: NamespaceSet, seed: int, *, selective_rules: bool = False) -> int:
    """Build a random configuration; return how many commands the kernel accepted.

    ``selective_rules`` keeps only rules that select on a mark, so that lookups can succeed.
    """
    ns.add("r", {"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.default.disable_ipv6": "0"})
    ns.run("r", "ip", "-batch", "-", stdin="\n".join(SETUP) + "\n")
    rng = random.Random(seed)
    rules = rule_commands(rng, 300)
    if selective_rules:
        rules = [r for r in rules if "fwmark" in r and " not " not in r]
    commands = extra_route_commands(rng, 80) + rules + route_commands(rng, 500)  # next hops before any rule
    accepted = 0
    for family in ("-4", "-6"):
        lines = [c[3:] for c in commands if c.startswith(family)]
        out = ns.run("r", "sh", "-c", f"ip {family} -force -batch - 2>&1", stdin="\n".join(lines) + "\n", check=False)
        accepted += len(lines) - out.count("Command failed")
    return accepted


def _milliseconds(value: str) -> int:
    return int(value[:-2]) if value.endswith("ms") else round(float(value[:-1]) * 1000)


def _as_json(rec: dict) -> dict:
    """Return a parsed record in the form ``ip -j`` prints: the text keeps the unit of rtt, rttvar
    and rto_min (-j: milliseconds), says congctl (-j: "congestion", iproute2 6.1) and lists
    features (-j: "ecn": null); ``nop`` is a key."""
    rec = json_record(rec)
    rec.pop("metrics_locked", None)  # -j drops the `lock` of locked metrics; the text keeps it
    for metrics in rec.get("metrics") or []:
        for key in ("rtt", "rttvar", "rto_min"):
            if key in metrics:
                metrics[key] = _milliseconds(metrics[key])
        if "congctl" in metrics:
            metrics["congestion"] = metrics.pop("congctl")
        for feature in metrics.pop("features", []):
            metrics[feature] = None
    return rec


def _compare(text: str, js: list[dict], parse) -> int:  # type: ignore[no-untyped-def]
    records, _ = parse(text)
    records = [_as_json(rec) for rec in records]
    assert len(records) == len(js), "record count differs"
    for got, want in zip(records, js, strict=True):
        assert got == want, f"\nparsed: {got}\nkernel: {want}"
    return len(records)


def _snapshot(ns: NamespaceSet, *argv: str) -> tuple[str, list[dict]]:
    """Return ``ip ARGV`` as text and as JSON (``-j``) from the same state of the kernel: IPv6 keeps
    adding routes for a moment after its addresses are set (duplicate address detection), so the
    text is read again after the JSON until both reads of the text agree."""
    for _ in range(50):
        text = ns.run("r", "ip", *argv)
        js = json.loads(ns.run("r", "ip", "-j", *argv))
        if ns.run("r", "ip", *argv) == text:
            return text, js
        time.sleep(0.05)
    raise AssertionError(f"ip {' '.join(argv)} did not settle")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_rules_and_routes_parse_like_iproute2_json(namespaces: NamespaceSet, seed: int) -> None:
    accepted = _configure(namespaces, seed)
    assert accepted > 680, f"the kernel accepted only {accepted} of 886 random commands"
    total = 0
    for family in ("-4", "-6"):
        text, js = _snapshot(namespaces, family, "rule")
        total += _compare(text, js, parse_ip_rule_records)
        assert "\n".join(render_rule(r) for r in parse_ip_rule_records(text)[0]) == text.rstrip("\n")
        text, js = _snapshot(namespaces, family, "route", "show", "table", "all")
        total += _compare(text, js, parse_ip_route_records)
        rendered = "\n".join(render_route(r) for r in parse_ip_route_records(text)[0])
        assert rendered == "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())
    assert total > 500, f"only {total} records compared"
    routes = namespaces.run("r", "ip", "route", "show", "table", "all") + namespaces.run("r", "ip", "rule")
    for construct in (" nhid ", " via inet6 ", " rtt ", " rto_min lock ", " congctl ", " features ecn", "fwmark 0/",
                      " nop", "\n0:"):
        assert construct in routes, f"the random configuration has no {construct.strip()!r}"


def test_route_get_answers_parse_like_iproute2_json(namespaces: NamespaceSet) -> None:
    _configure(namespaces, 9, selective_rules=True)
    namespaces.run("r", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    namespaces.run("r", "ip", "route", "replace", "default", "via", "10.0.0.254", "dev", "v0", "onlink")
    rng = random.Random(9)
    queries = []
    for _ in range(300):
        dst = f"10.{rng.randrange(3)}.{rng.randrange(2)}.{rng.randrange(1, 255)}" if rng.random() < 0.5 else \
            f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        q = f"route get {dst}"
        if rng.random() < 0.5:
            q += f" from 10.0.{rng.randrange(3)}.{rng.randrange(1, 9)} iif {rng.choice(['v0', 'v1'])}"
        if rng.random() < 0.5:
            q += f" mark {hex(rng.choice([0x100, 0x200, 0x40, rng.randrange(1, 4096)]))}"
        queries.append(q)
    batch = "\n".join(queries) + "\n"
    js_text = namespaces.run("r", "ip", "-j", "-force", "-batch", "-", stdin=batch, check=False)
    answers = [json.loads(line)[0] for line in js_text.splitlines() if line.startswith("[")]
    records, _ = parse_ip_route_records(
        namespaces.run("r", "sh", "-c", "ip -force -batch - 2>&1", stdin=batch, check=False), allow_errors=True)
    ok = [_as_json(r) for r in records if "error" not in r]
    assert len(ok) == len(answers) and len(records) == len(queries)
    assert ok == answers
    assert len(ok) > 100 and len(records) - len(ok) > 10, "want both answers and errors in the sample"


def test_ip_addr_parses_like_iproute2_json(namespaces: NamespaceSet) -> None:
    _configure(namespaces, 5)
    namespaces.run("r", "ip", "addr", "add", "10.0.0.9/24", "dev", "v0", "label", "v0:1")
    namespaces.run("r", "ip", "addr", "add", "10.0.0.10/24", "dev", "v0")
    namespaces.run("r", "ip", "link", "property", "add", "dev", "v0", "altname", "enp0s5v0")
    namespaces.run("r", "ip", "link", "property", "add", "dev", "v0", "altname", "ens5")
    text, js = _snapshot(namespaces, "addr")
    assert "altname enp0s5v0" in text and "altname ens5" in text
    assert _compare(text, js, parse_ip_addr_records) == 5
    for family in ("-4", "-6"):  # no link/ lines, only interfaces with such addresses
        text, js = _snapshot(namespaces, family, "addr")
        assert "link/" not in text
        assert _compare(text, js, parse_ip_addr_records) == len(js) >= 3


def test_ip_d_link_of_bridges_ports_and_tunnels(namespaces: NamespaceSet) -> None:
    """``ip -d link`` of a bridge, a bridge port (``bridge_slave …``), a vxlan and veths with an
    altname: the kinds, slave kinds and altnames are iproute2's ``-j`` ones; the bridge's and the
    port's details are kept as printed (dozens of KEY VALUE pairs)."""
    namespaces.add("r")
    namespaces.run("r", "ip", "-batch", "-", stdin="link add br0 type bridge\nlink add v0 type veth peer name p0\n"
                   "link set v0 master br0\nlink add vx0 type vxlan id 42 dstport 4789 local 10.0.0.1 remote 10.0.0.2\n"
                   "link property add dev v0 altname enp9s0v0\n")
    text, js = _snapshot(namespaces, "-d", "link")
    records = {r["ifname"]: r for r in parse_ip_addr_records(text, link=True)[0]}
    for want in js:
        got = records[want["ifname"]]
        info, want_info = got.get("linkinfo") or {}, want.get("linkinfo") or {}
        assert (info.get("info_kind"), info.get("info_slave_kind")) == \
            (want_info.get("info_kind"), want_info.get("info_slave_kind")), want["ifname"]
        assert got.get("altnames") == want.get("altnames")
        assert got.get("mtu") == want.get("mtu") and got.get("promiscuity") == want.get("promiscuity")
    assert len(records["br0"]["linkinfo"]["info_data"]) > 20 and len(records["v0"]["linkinfo"]["info_slave_data"]) > 15
    assert records["v0"]["linkinfo"]["info_slave_data"]["state"] == _slave_state(js, "v0")


def _slave_state(js: list[dict], name: str) -> str:
    return next(r for r in js if r["ifname"] == name)["linkinfo"]["info_slave_data"]["state"]
