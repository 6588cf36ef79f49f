"""Linux IPv4 policy routing: the rule list and the routing tables, looked up as the kernel does.

:class:`Fib` is built from ``ip rule`` and ``ip route`` records (the parsers' ``-j`` keys).
:meth:`Fib.lookup` follows ``fib_rules_lookup`` (priority order, ``not``, ``goto``, actions,
``suppress_prefixlength``) and ``fib_table_lookup`` (longest prefix first; per prefix, TOS then
metric order; error route types; ``throw``; next hops restricted by ``oif``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ambientlab.core.trace import ipv4
from ambientlab.core.trace.ipv4 import MASKS, SCOPES


class Errno(IntEnum):
    """The errors a route lookup can end with, as the kernel numbers them."""

    EAGAIN = 11
    EACCES = 13
    ENODEV = 19
    EINVAL = 22
    ENETUNREACH = 101
    EHOSTUNREACH = 113

    @property
    def message(self) -> str:
        """Return the text ``ip`` prints after ``RTNETLINK answers:``."""
        return MESSAGES[self]


MESSAGES = {
    Errno.EAGAIN: "Resource temporarily unavailable", Errno.EACCES: "Permission denied",
    Errno.ENODEV: "No such device", Errno.EINVAL: "Invalid argument",
    Errno.ENETUNREACH: "Network is unreachable", Errno.EHOSTUNREACH: "No route to host",
}
# fib_props[type].error: what a table lookup returns when it lands on a route of this type.
TYPE_ERRORS = {"blackhole": Errno.EINVAL, "unreachable": Errno.EHOSTUNREACH, "prohibit": Errno.EACCES,
               "throw": Errno.EAGAIN, "nat": Errno.EINVAL, "xresolve": Errno.EINVAL}
# fib4_rule_action: errors of the rule actions that are not lookups.
ACTION_ERRORS = {"blackhole": Errno.EINVAL, "unreachable": Errno.ENETUNREACH, "prohibit": Errno.EACCES}
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "sctp": 132}


class UnsupportedRoute(ValueError):
    """A rule or route uses a feature the tracer does not model (named in the message)."""


@dataclass(slots=True)
class Flow:
    """The key of one lookup (``struct flowi4``): addresses, devices, mark and L4 fields."""

    dst: int
    src: int = 0
    iif: str = "lo"
    oif: str | None = None
    mark: int = 0
    tos: int = 0
    proto: int = 0
    sport: int = 0
    dport: int = 0
    uid: int = 0


@dataclass(frozen=True, slots=True)
class Nexthop:
    """One next hop: gateway (or None), device, weight and flags."""

    gateway: int | None
    dev: str
    weight: int = 1
    flags: tuple[str, ...] = ()


@dataclass(slots=True)
class Route:
    """A route of one table, with the record it came from."""

    table: int
    type: str
    network: int
    length: int
    tos: int
    metric: int
    scope: int
    prefsrc: int | None
    nexthops: tuple[Nexthop, ...]
    record: dict[str, Any]
    line: int | None = None
    source: str = ""
    error: Errno | None = None  # the lookup error of an error type (blackhole, unreachable, …)
    live: tuple[Nexthop, ...] = ()  # the next hops not flagged dead

    def __post_init__(self) -> None:
        self.error = TYPE_ERRORS.get(self.type)
        self.live = tuple(h for h in self.nexthops if "dead" not in h.flags)

    @property
    def dst(self) -> str:
        """Return the destination as iproute2 prints it."""
        if self.length == 0:
            return "default"
        text = ipv4.to_text(self.network)
        return text if self.length == 32 else f"{text}/{self.length}"


@dataclass(slots=True)
class Rule:
    """A policy routing rule, with the record it came from."""

    priority: int
    record: dict[str, Any]
    line: int | None = None
    source: str = ""
    invert: bool = False
    src: int = 0
    srcmask: int = 0
    dst: int = 0
    dstmask: int = 0
    tos: int = 0
    mark: int = 0
    markmask: int = 0
    iif: str | None = None
    oif: str | None = None
    uids: tuple[int, int] | None = None
    proto: int = 0
    sports: tuple[int, int] | None = None
    dports: tuple[int, int] | None = None
    tun_id: int = 0
    action: str = "lookup"
    table: int = 0
    target: int | None = None  # index of the goto target in Fib.rules
    suppress_prefixlen: int = -1
    mark_only: bool = False  # set by Fib: no selector but the mark (most rules), a faster match

    def matches(self, flow: Flow) -> bool:
        """Return True if ``flow`` matches the selector (``not`` applied), as fib_rule_match does."""
        if self.mark_only:
            return (not ((self.mark ^ flow.mark) & self.markmask)) != self.invert
        ok = (
            (self.iif is None or self.iif == flow.iif)
            and (self.oif is None or self.oif == flow.oif)
            and not ((self.mark ^ flow.mark) & self.markmask)
            and not self.tun_id
            and (self.uids is None or self.uids[0] <= flow.uid <= self.uids[1])
            and not ((flow.src ^ self.src) & self.srcmask)
            and not ((flow.dst ^ self.dst) & self.dstmask)
            and (not self.tos or self.tos == flow.tos)
            and (not self.proto or self.proto == flow.proto)
            and (self.sports is None or self.sports[0] <= flow.sport <= self.sports[1])
            and (self.dports is None or self.dports[0] <= flow.dport <= self.dports[1])
        )
        return ok != self.invert

    @property
    def text(self) -> str:
        """Return the line ``ip rule`` prints for this rule."""
        from ambientlab.core.parse.ip_rule import render_rule

        return render_rule(self.record)


@dataclass(slots=True)
class Table:
    """One routing table: routes grouped by prefix length, longest first."""

    number: int
    routes: list[Route] = field(default_factory=list)
    by_length: dict[int, dict[int, list[Route]]] = field(default_factory=dict)
    levels: list[tuple[int, dict[int, list[Route]]]] = field(default_factory=list)
    # The table as a step function of the destination (for lookups without TOS and oif): the
    # sorted starts of the address ranges inside which every address lies in the same prefixes,
    # and each range's answer. Built on the first such lookup after a change.
    starts: list[int] | None = field(default=None, repr=False)
    answers: list[tuple[Route, Nexthop] | Errno] = field(default_factory=list, repr=False)

    def add(self, route: Route) -> None:
        """Add ``route`` keeping each prefix's routes in kernel order (TOS high first, then metric)."""
        self.routes.append(route)
        group = self.by_length.setdefault(route.length, {}).setdefault(route.network, [])
        group.append(route)
        group.sort(key=lambda r: (-r.table, -r.tos, r.metric))  # a merged table: local's routes first
        self.levels = [(MASKS[n], self.by_length[n]) for n in sorted(self.by_length, reverse=True)]
        self.starts = None

    def bounds(self) -> set[int]:
        """Return the first address of every prefix of the table and the address after its end."""
        found = {0}
        for length, groups in self.by_length.items():
            size = 1 << (32 - length)
            for network in groups:
                found.add(network)
                if network + size <= 0xFFFFFFFF:
                    found.add(network + size)
        return found

    def lookup(self, flow: Flow) -> tuple[Route, Nexthop] | Errno:
        """Return (route, first usable next hop), or the error of an error-type route, or EAGAIN.

        Without TOS and ``oif`` the answer depends on the destination alone: it is read from the
        table's step function (one binary search), built on first use.
        """
        if flow.tos or flow.oif is not None:
            return self._scan(flow.dst, flow.tos, flow.oif)
        starts = self.starts
        if starts is None:
            starts = sorted(self.bounds())
            self.answers = [self._scan(start, 0, None) for start in starts]
            self.starts = starts
        return self.answers[bisect_right(starts, flow.dst) - 1]

    def _scan(self, dst: int, tos: int, oif: str | None) -> tuple[Route, Nexthop] | Errno:
        for mask, groups in self.levels:
            group = groups.get(dst & mask)
            if group is None:
                continue
            for route in group:
                if route.tos and route.tos != tos:
                    continue
                if route.error is not None:
                    return route.error
                for hop in route.live:
                    if oif is None or hop.dev == oif:
                        return route, hop
        return Errno.EAGAIN


@dataclass(slots=True)
class FibResult:
    """A successful lookup: the rule that decided, the route and its chosen next hop."""

    rule: Rule | None
    route: Route
    nexthop: Nexthop
    via: Rule | None = None  # the goto rule that jumped to ``rule``, if one did
    reported: int | None = None  # the table the kernel reports, when not the route's (merged tables)

    @property
    def table(self) -> int:
        """Return the number of the table the kernel reports: the route's own, except for a
        local route found in the merged local/main table of a namespace without custom rules
        (then main)."""
        return self.route.table if self.reported is None else self.reported


DEFAULT_RULES = ((0, "local"), (32766, "main"), (32767, "default"))


class Fib:
    """The policy routing state of one host: rules in priority order and the tables."""

    def __init__(self, rules: list[Rule], tables: dict[int, Table], *, unmerged: bool = False) -> None:
        """``unmerged``: a rule was added once (and maybe deleted again), so the kernel keeps local
        and main apart even if only the default rules are left (``fib_has_custom_rules`` stays set)."""
        self.rules = sorted(rules, key=lambda r: r.priority)  # stable: equal priorities keep their order
        for rule in self.rules:
            rule.mark_only = (rule.iif is None and rule.oif is None and not rule.tun_id and rule.uids is None
                              and not rule.srcmask and not rule.dstmask and not rule.tos and not rule.proto
                              and rule.sports is None and rule.dports is None)
        self.mark_only = all(rule.mark_only for rule in self.rules)
        self.mark_bits = 0  # the only mark bits any rule looks at
        for rule in self.rules:
            self.mark_bits |= rule.markmask
        self.plans: dict[int, tuple[tuple[Rule, Rule | None], ...]] = {}
        # For mark-only rules: per selected mark bits, the answers over the ranges of ``starts``
        # (None until a lookup lands in the range); see lookup().
        self.results: dict[int, list[FibResult | Errno | None]] = {}
        self.starts: list[int] | None = None
        self.tables = tables
        for rule in self.rules:
            if rule.action == "goto":
                rule.target = next((i for i, r in enumerate(self.rules) if r.priority == rule.table), None)
        self.custom_rules = [(r.priority, r.action, r.table, r.markmask, r.srcmask, r.dstmask) for r in self.rules] != [
            (p, "lookup", ipv4.TABLES[t], 0, 0, 0) for p, t in DEFAULT_RULES]
        self.custom_local_routes = any(
            r.type == "local" and r.record.get("protocol") != "kernel" for t in tables.values() for r in t.routes)
        # Until a rule is added (fib4_rule_configure calls fib_unmerge), the kernel keeps the
        # local table's routes in the main table's trie and fib_lookup skips the rules: one
        # longest-prefix lookup over both (local's routes first for an equal prefix), reported
        # as table main; then the default table if that found nothing.
        self.unmerged = unmerged or self.custom_rules
        self.merged: Table | None = None
        if not self.unmerged:
            merged = Table(ipv4.TABLES["main"])
            for number in (ipv4.TABLES["local"], ipv4.TABLES["main"]):
                for route in tables.get(number, Table(number)).routes:
                    merged.add(route)
            self.merged = merged

    @classmethod
    def from_parts(cls, rules: list[Rule], routes: list[Route], *, unmerged: bool = False) -> Fib:
        """Return the Fib of built rules and routes (routes grouped into their tables); see
        :class:`Fib` for ``unmerged``."""
        tables: dict[int, Table] = {}
        for route in routes:
            tables.setdefault(route.table, Table(route.table)).add(route)
        return cls(rules, tables, unmerged=unmerged)

    def _walk(self, flow: Flow) -> Iterator[tuple[Rule, Rule | None]]:
        """Yield (rule, goto) for the rules that match ``flow`` and act (lookup or error), in the
        order ``fib_rules_lookup`` reaches them; ``goto`` is the rule that jumped there, if any.
        Gotos are followed; ``nop`` and unresolved gotos are skipped."""
        rules = self.rules
        i, count = 0, len(rules)
        while i < count:
            rule, via = rules[i], None
            i += 1
            while rule.matches(flow):  # a goto re-enters here with its target rule
                if rule.action == "goto":
                    if rule.target is None:
                        break
                    i, via = rule.target + 1, rule
                    rule = rules[rule.target]
                    continue
                if rule.action != "nop":
                    yield rule, via
                break

    def lookup(self, flow: Flow) -> FibResult | Errno:
        """Return the result of ``fib_lookup`` for ``flow``: a FibResult or an error.

        A miss everywhere is ENETUNREACH, as ``fib_lookup`` turns ESRCH into it. When every rule
        selects on the mark alone (as on the demo hosts), the matching rules depend on the mark bits
        that some rule's mask selects, and the answer on those bits and the destination: both
        are kept. Tables are not changed after the Fib is built.
        """
        if self.mark_only and not flow.tos and flow.oif is None:
            # The answer is then a step function of the destination, per selected mark bits: it
            # changes only at the bounds of the tables' prefixes. One binary search finds the
            # range; its answer is computed once and kept.
            starts = self.starts
            if starts is None:
                bounds = {0}
                for table in (*self.tables.values(), *((self.merged,) if self.merged else ())):
                    bounds |= table.bounds()
                starts = self.starts = sorted(bounds)
            bits = flow.mark & self.mark_bits
            answers = self.results.get(bits)
            if answers is None:
                if len(self.results) >= 1 << 12:  # random marks under a wide mask: keep memory bounded
                    self.results.clear()
                answers = self.results[bits] = [None] * len(starts)
            at = bisect_right(starts, flow.dst) - 1
            result = answers[at]
            if result is None:
                result = answers[at] = self._lookup(flow)
            return result
        return self._lookup(flow)

    def _merged_lookup(self, flow: Flow) -> FibResult | Errno:
        assert self.merged is not None
        main = ipv4.TABLES["main"]
        by_table = {r.table: r for r in self.rules}
        for table, number in ((self.merged, main), (self.tables.get(ipv4.TABLES["default"]), ipv4.TABLES["default"])):
            if table is None:
                continue
            found = table.lookup(flow)
            if found is Errno.EAGAIN:
                continue
            if isinstance(found, Errno):
                return found
            route, hop = found
            # the merged trie holds local's routes too: the rule that names the route's own table decided
            return FibResult(by_table.get(route.table, by_table.get(number)), route, hop, None, reported=number)
        return Errno.ENETUNREACH

    def _lookup(self, flow: Flow) -> FibResult | Errno:
        if self.merged is not None:
            return self._merged_lookup(flow)
        if self.mark_only:
            bits = flow.mark & self.mark_bits
            plan = self.plans.get(bits)
            if plan is None:
                plan = self.plans[bits] = tuple(self._walk(flow))
        else:
            plan = self._walk(flow)
        tables = self.tables
        for rule, via in plan:
            if rule.action != "lookup":
                return ACTION_ERRORS[rule.action]
            table = tables.get(rule.table)
            if table is None:
                continue
            found = table.lookup(flow)
            if found is Errno.EAGAIN:
                continue
            if isinstance(found, Errno):
                return found
            route, hop = found
            if route.length <= rule.suppress_prefixlen:
                continue
            return FibResult(rule, route, hop, via)
        return Errno.ENETUNREACH


def _scope(rec: dict[str, Any]) -> int:
    if "scope" in rec:
        return SCOPES[rec["scope"]] if rec["scope"] in SCOPES else int(rec["scope"])
    return SCOPES["host"] if rec.get("type") == "local" else (
        SCOPES["link"] if rec.get("type") == "broadcast" else 0)


def route_from_record(rec: dict[str, Any], line: int | None = None, source: str = "", table: str | None = None) -> Route:
    """Return the Route of one ``ip route`` record (raise UnsupportedRoute for IPv6 and the like).

    ``table`` names the table when the record does not (``ip route show table N`` omits it).
    """
    dst = rec["dst"]
    if ":" in dst or ":" in str(rec.get("gateway", "")):
        raise UnsupportedRoute(f"line {line}: IPv6 route {dst!r}: the tracer models IPv4")
    if "nhid" in rec or "flow" in rec or "via" in rec or any("via" in hop for hop in rec.get("nexthops", [])):
        raise UnsupportedRoute(f"line {line}: nexthop objects (nhid), realms and next hops of another family "
                               "(via inet6) are not modelled")
    network, length = ipv4.prefix(dst)
    kind = rec.get("type", "unicast")
    hops: list[Nexthop] = []
    if "nexthops" in rec:
        for hop in rec["nexthops"]:
            hops.append(Nexthop(ipv4.to_int(hop["gateway"]) if "gateway" in hop else None, hop["dev"],
                                int(hop.get("weight", 1)), tuple(hop.get("flags", ()))))
    elif "dev" in rec:
        hops.append(Nexthop(ipv4.to_int(rec["gateway"]) if "gateway" in rec else None, rec["dev"], 1,
                            tuple(rec.get("flags", ()))))
    elif kind not in TYPE_ERRORS:
        raise UnsupportedRoute(f"line {line}: {kind} route {dst!r} without a device")
    tos = int(rec["tos"], 16) if "tos" in rec else 0
    return Route(
        table=ipv4.table_id(rec.get("table", table or "main")), type=kind, network=network, length=length, tos=tos,
        metric=int(rec.get("metric", 0)), scope=_scope(rec),
        prefsrc=ipv4.to_int(rec["prefsrc"]) if "prefsrc" in rec else None,
        nexthops=tuple(hops), record=rec, line=line, source=source)


def _ports(rec: dict[str, Any], key: str) -> tuple[int, int] | None:
    if key in rec:
        return int(rec[key]), int(rec[key])
    if f"{key}_start" in rec:
        return int(rec[f"{key}_start"]), int(rec[f"{key}_end"])
    return None


def rule_from_record(rec: dict[str, Any], line: int | None = None, source: str = "") -> Rule:
    """Return the Rule of one ``ip rule`` record (raise UnsupportedRoute for what is not modelled)."""
    if "l3mdev" in rec or "suppress_ifgroup" in rec or "flow_to" in rec:
        raise UnsupportedRoute(f"line {line}: rule {rec['priority']}: l3mdev, suppress_ifgroup and realms are not modelled")
    if ":" in rec["src"] or ":" in str(rec.get("dst", "")):
        raise UnsupportedRoute(f"line {line}: IPv6 rule: the tracer models IPv4")
    rule = Rule(priority=int(rec["priority"]), record=rec, line=line, source=source, invert="not" in rec)
    if rec["src"] != "all":
        rule.srcmask = MASKS[int(rec.get("srclen", 32))]
        rule.src = ipv4.to_int(rec["src"]) & rule.srcmask
    if "dst" in rec:
        rule.dstmask = MASKS[int(rec.get("dstlen", 32))]
        rule.dst = ipv4.to_int(rec["dst"]) & rule.dstmask
    rule.tos = int(rec["tos"], 16) if "tos" in rec else 0
    if "fwmark" in rec:
        rule.markmask = int(rec["fwmask"], 16) if "fwmask" in rec else 0xFFFFFFFF
        rule.mark = int(rec["fwmark"], 16) & rule.markmask
    # A detached device has no ifindex: the kernel stores -1, which no packet's device matches.
    rule.iif = "\0detached" if "iif_detached" in rec else rec.get("iif")
    rule.oif = "\0detached" if "oif_detached" in rec else rec.get("oif")
    if "uid_start" in rec:
        rule.uids = (int(rec["uid_start"]), int(rec["uid_end"]))
    if "ipproto" in rec:
        name = rec["ipproto"]
        rule.proto = PROTOCOLS[name] if name in PROTOCOLS else int(name.removeprefix("ipproto-"))
    rule.sports, rule.dports = _ports(rec, "sport"), _ports(rec, "dport")
    rule.tun_id = int(rec.get("tun_id", 0))
    if "goto" in rec:
        rule.action, rule.table = "goto", int(rec["goto"])
    elif "action" in rec:
        rule.action = rec["action"]
    else:
        rule.table = ipv4.table_id(rec.get("table", "main"))
    if "suppress_prefixlen" in rec:
        rule.suppress_prefixlen = int(rec["suppress_prefixlen"])
    return rule
