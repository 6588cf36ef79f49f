"""iptables rule sets replayed on packets: tables, hooks, chains, matches, targets, conntrack.

A :class:`Ruleset` is compiled from ``iptables-save`` text. :meth:`Ruleset.run` passes a
:class:`Packet` through the tables of one hook in the kernel's priority order and returns the
verdict and the rules that matched. Matches and targets outside :data:`MATCHES` and
:data:`TARGETS` raise :class:`UnsupportedRule` when the rule set is compiled: nothing is ignored.

``-j CT --zone N`` (in the raw table, before conntrack looks the packet up) puts the packet's
connection in conntrack zone N: conntrack keys its table by zone and tuple, so the same tuple in
two zones is two connections (:attr:`Packet.zone`; the Network looks the packet up after raw).

``-m statistic --mode random`` is a draw the tracer does not make: a walk pins the endpoint it
follows (:meth:`Ruleset.pin`), and the kernel checks load the same pin as probabilities 0 and 1
(:func:`pinned_text`); :func:`branches` lists every branch of a chain with its chance.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ambientlab.core.parse.iptables import parse_iptables_save
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.fib import PROTOCOLS

# Tables of each hook, in the order of their priorities (raw -300, mangle -150, nat -100/+100,
# filter 0). Conntrack lookup runs after raw; NAT only on a connection's first packet.
HOOK_TABLES = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "nat"),
    "FORWARD": ("mangle", "filter"),
    "OUTPUT": ("raw", "mangle", "nat", "filter"),
    "POSTROUTING": ("mangle", "nat"),
}
CT_STATES = ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "SNAT", "DNAT")


class UnsupportedRule(ValueError):
    """A rule uses a match or target the tracer does not model (named in the message)."""


class UnpinnedDraw(LookupError):
    """A packet reached a ``-m statistic --mode random`` rule of a chain no branch of which is pinned."""


def _no_host(addr: int) -> bool:
    raise UnsupportedRule("-m addrtype needs the host's addresses: run the rules inside a Network")


@dataclass(slots=True)
class Conn:
    """A conntrack entry: the original tuple, NAT bindings, mark and whether a reply was seen."""

    orig: tuple[int, int, int, int, int]
    mark: int = 0
    zone: int = 0  # the conntrack zone (CT --zone): part of the connection's key
    replied: bool = False
    dnat: tuple[int, int] | None = None
    snat: tuple[int, int] | None = None
    nat_done: set[str] = field(default_factory=set)

    def reply_tuple(self) -> tuple[int, int, int, int, int]:
        """Return the tuple a reply packet carries (NAT applied)."""
        src, dst, proto, sport, dport = self.orig
        if self.dnat:
            dst, dport = self.dnat
        if self.snat:
            src, sport = self.snat
        return dst, src, proto, dport, sport


@dataclass(slots=True)
class Packet:
    """An IPv4 packet as netfilter sees it at one host."""

    src: int
    dst: int
    proto: int
    sport: int = 0
    dport: int = 0
    flags: str = ""
    mark: int = 0
    iif: str | None = None
    oif: str | None = None
    socket: bool = False
    conn: Conn | None = None
    reply: bool = False
    tproxy: tuple[int, int] | None = None
    redirect_ip: int = 0x7F000001  # where REDIRECT sends: the iif's first address, or 127.0.0.1 in OUTPUT
    inner: Packet | None = None  # the packet a tunnel's UDP packet carries
    vni: int = 0  # and the tunnel's VNI
    masquerade_ip: int = 0  # MASQUERADE's source: the out device's address toward the next hop
    zone: int = 0  # the conntrack zone the raw table's CT --zone chose (0: the default zone)

    def enter(self, dev: str, mark: int = 0) -> None:
        """Arrive on ``dev`` of another host (or out of a tunnel): per-host state is reset. The
        mark is cleared between namespaces; a tunnel in the same namespace keeps it (``mark``)."""
        self.mark, self.iif, self.oif, self.conn, self.tproxy, self.socket = mark, dev, None, None, None, False
        self.zone = 0

    def describe(self) -> str:
        """Return ``SRC:SPORT > DST:DPORT PROTO FLAGS`` for tables."""
        name = {6: "tcp", 17: "udp"}.get(self.proto, str(self.proto))
        tail = f" [{self.flags}]" if self.flags else ""
        return f"{ipv4.to_text(self.src)}:{self.sport} > {ipv4.to_text(self.dst)}:{self.dport} {name}{tail}"


@dataclass(slots=True)
class Hit:
    """One rule that matched a packet, and what it did."""

    table: str
    chain: str
    line: int
    text: str
    target: str
    mark_before: int
    mark_after: int
    ctmark: int | None


@dataclass(slots=True)
class Verdict:
    """The outcome of one hook: ``ACCEPT`` or ``DROP``, and the rules that matched, in order."""

    action: str
    hits: list[Hit]


Test = Callable[[Packet], bool]


def _addr_test(spec: str, key: str) -> Test:
    network, length = ipv4.prefix(spec)  # ValueError for a dotted (non-prefix) mask
    mask = ipv4.MASKS[length]
    if key == "src":
        return lambda p: (p.src & mask) == network
    return lambda p: (p.dst & mask) == network


def _iface_test(name: str, key: str) -> Test:
    if name.endswith("+"):
        stem = name[:-1]
        return lambda p: (getattr(p, key) or "").startswith(stem)
    return lambda p: getattr(p, key) == name


def _port_test(spec: str, key: str) -> Test:
    lo, colon, hi = spec.partition(":")  # PORT, or FIRST:LAST with either end optional
    low = int(lo) if lo else 0
    high = (int(hi) if hi else 65535) if colon else low
    return lambda p: low <= getattr(p, key) <= high


def _mark_value(spec: str) -> tuple[int, int]:
    value, _, mask = spec.partition("/")
    return int(value, 16), int(mask, 16) if mask else 0xFFFFFFFF


def _ctstate(p: Packet) -> str:
    if p.conn is None:
        return "UNTRACKED"
    return "ESTABLISHED" if p.conn.replied else "NEW"


RULE_KEYS = ("table", "chain", "matches", "jump", "target", "target_options", "text")


@functools.lru_cache(maxsize=64)
def _parsed_rules(text: str, source: str) -> tuple[tuple[tuple[str, str, str], ...], tuple[tuple[int, dict[str, Any]], ...]]:
    """Return ``iptables-save`` output ``text`` parsed, as its chains (table, chain, policy) and
    its rules (line, record with :data:`RULE_KEYS`), once per distinct (text, source) in this
    process: a network is built again for every walk. The records are never changed (a
    :class:`Ruleset` holds copies of them, and reads only)."""
    parsed = parse_iptables_save(text, source)
    chains = tuple((str(c.table), str(c.chain), c.policy) for c in parsed.chains.itertuples(index=False))
    rules = tuple((int(line), rule) for line, rule in zip(parsed.rules.index, parsed.rules[list(RULE_KEYS)].to_dict("records"),
                                                          strict=True))
    return chains, rules


class Ruleset:
    """The iptables rules of one host, compiled for :meth:`run`."""

    def __init__(self, text: str, source: str, ipsets: dict[str, set[int]] | None = None) -> None:
        chains, rules = _parsed_rules(text, source)
        self.source = source
        self.ipsets = ipsets if ipsets is not None else {}
        # -m addrtype --dst-type LOCAL asks the host (the Network sets it to Host.is_local)
        self.is_local: Callable[[int], bool] = _no_host
        self.winners: dict[tuple[str, str], int] = {}  # (table, chain) -> line of the pinned branch
        self._random: dict[int, tuple[str, str]] = {}  # line of a statistic rule -> its (table, chain)
        self.chains: dict[tuple[str, str], list[tuple[list[Test], dict[str, Any], int]]] = {}
        self.policies: dict[tuple[str, str], str] = {}
        for table, chain, policy in chains:
            self.chains[(table, chain)] = []
            self.policies[(table, chain)] = policy
        for line, rule in rules:
            rec = dict(rule)
            self.chains[(rec["table"], rec["chain"])].append((self._compile(rec, line), rec, line))
        self.masquerades = any(rec.get("target") == "MASQUERADE" for entries in self.chains.values() for _, rec, _ in entries)

    # -- compilation -------------------------------------------------------------------------------
    def _where(self, line: int) -> str:
        return f"{self.source}:{line}"

    def _compile(self, rec: dict[str, Any], line: int) -> list[Test]:
        tests: list[Test] = []
        for match in rec["matches"]:
            module = match["module"]
            if module == "statistic":
                self._random[line] = (rec["table"], rec["chain"])
            for opt in match["options"]:
                test = self._test(module, opt["option"], opt["args"], line)
                if test is None:
                    continue
                if opt["negated"]:
                    tests.append(lambda p, t=test: not t(p))
                else:
                    tests.append(test)
        target = rec.get("target")
        if target is not None and target not in TARGETS and (rec["table"], target) not in self.chains:
            raise UnsupportedRule(f"{self._where(line)}: target {target} is not modelled")
        return tests

    def _test(self, module: str, option: str, args: list[str], line: int) -> Test | None:
        arg = args[0] if args else ""
        if module == "" and option in ("-s", "-d"):
            try:
                return _addr_test(arg, "src" if option == "-s" else "dst")
            except ValueError:
                raise UnsupportedRule(f"{self._where(line)}: {option} {arg}: only prefix masks are modelled") from None
        if module == "" and option in ("-i", "-o"):
            return _iface_test(arg, "iif" if option == "-i" else "oif")
        if module == "" and option == "-p":
            if arg == "all":
                return lambda p: True
            number = PROTOCOLS.get(arg, int(arg) if arg.isdigit() else -1)
            return lambda p: p.proto == number
        if module in ("tcp", "udp") and option in ("--sport", "--dport"):
            number = PROTOCOLS[module]
            port = _port_test(arg, "sport" if option == "--sport" else "dport")
            return lambda p: p.proto == number and port(p)
        if module == "mark" and option == "--mark":
            value, mask = _mark_value(arg)
            return lambda p: (p.mark & mask) == value
        if module == "connmark" and option == "--mark":
            value, mask = _mark_value(arg)
            return lambda p: p.conn is not None and (p.conn.mark & mask) == value
        if module == "conntrack" and option == "--ctstate":
            states = set(arg.split(","))
            if not states <= set(CT_STATES) or states & {"INVALID", "SNAT", "DNAT"}:
                raise UnsupportedRule(f"{self._where(line)}: --ctstate {arg}: only NEW, ESTABLISHED, RELATED, "
                                      "UNTRACKED are modelled")
            # RELATED is accepted in a test but never matches: the walks send no ICMP errors and use
            # no conntrack helpers, so no packet of theirs is related to another connection.
            return lambda p: _ctstate(p) in states
        if module == "set" and option == "--match-set":
            name, where = args
            if where not in ("src", "dst"):
                raise UnsupportedRule(f"{self._where(line)}: --match-set {name} {where}: only src or dst of hash:ip")
            key = where
            return lambda p: getattr(p, key) in self.ipsets.get(name, ())
        if module == "owner" and option == "--socket-exists":
            return lambda p: p.socket
        if module == "statistic":
            return self._statistic(option, arg, line)
        if module == "addrtype" and option in ("--dst-type", "--src-type"):
            if arg != "LOCAL":
                raise UnsupportedRule(f"{self._where(line)}: {option} {arg}: only LOCAL is modelled")
            key = "dst" if option == "--dst-type" else "src"
            return lambda p: self.is_local(getattr(p, key))
        if module == "comment":
            return None
        raise UnsupportedRule(f"{self._where(line)}: match {module or '(basic)'} {option} is not modelled")

    def _statistic(self, option: str, arg: str, line: int) -> Test | None:
        if option == "--mode":
            if arg != "random":
                raise UnsupportedRule(f"{self._where(line)}: statistic --mode {arg}: only random is modelled")
            return None
        if option == "--probability":
            float(arg)  # a ValueError for a malformed number
            where = line
            return lambda p: self._drawn(where)
        raise UnsupportedRule(f"{self._where(line)}: statistic {option} is not modelled")

    def _drawn(self, line: int) -> bool:
        chain = self._random[line]
        if chain not in self.winners:
            raise UnpinnedDraw(f"{self._where(line)}: {chain[0]}/{chain[1]} draws at random: pin one of its "
                               "branches first (Ruleset.pin)")
        return self.winners[chain] == line

    def pin(self, table: str, target: str) -> int:
        """Make every random draw on the way to chain (or endpoint) ``target`` choose it: in the
        chain of ``table`` whose branches include a jump to ``target`` (a ``KUBE-SEP-…`` chain, or an
        endpoint ``IP:PORT`` that a branch's chain DNATs to), the statistic rule of that branch
        matches and the ones before it do not. Return the line of the chosen branch; a KeyError
        if no chain with random draws leads there."""
        for (tab, chain), entries in self.chains.items():
            if tab != table or not any(line in self._random for _, _, line in entries):
                continue
            for _, rec, line in entries:
                if rec.get("target") in (target, *self._chains_to(table, target)):
                    self.winners[(tab, chain)] = line
                    return line
        raise KeyError(f"{self.source}: no {table} chain with random branches leads to {target}")

    def _chains_to(self, table: str, endpoint: str) -> list[str]:
        """Return the chains of ``table`` that DNAT to ``endpoint`` (``IP:PORT``)."""
        return [chain for (tab, chain), entries in self.chains.items() if tab == table
                and any(rec.get("target") == "DNAT" and _opts(rec["target_options"]).get("--to-destination") == [endpoint]
                        for _, rec, _ in entries)]

    # -- evaluation --------------------------------------------------------------------------------
    def run(self, hook: str, packet: Packet, nat: bool, tables: tuple[str, ...] | None = None) -> Verdict:
        """Pass ``packet`` through every table of ``hook`` (or only those of them in ``tables``);
        return the verdict and the hits.

        ``nat`` says whether the nat table runs (a connection's first packet only).
        """
        hits: list[Hit] = []
        for table in HOOK_TABLES[hook]:
            if tables is not None and table not in tables:
                continue
            if (table, hook) not in self.chains or (table == "nat" and not nat):
                continue
            action = self._chain(table, hook, packet, hits, 0)
            if action in (None, "RETURN"):
                action = self.policies[(table, hook)]
            if action != "ACCEPT":
                return Verdict(action, hits)
        return Verdict("ACCEPT", hits)

    def _chain(self, table: str, chain: str, packet: Packet, hits: list[Hit], depth: int) -> str | None:
        if depth > 32:
            raise UnsupportedRule(f"{self.source}: chain recursion deeper than 32 in {table}/{chain}")
        for tests, rec, line in self.chains[(table, chain)]:
            if not all(t(packet) for t in tests):
                continue
            target = rec.get("target")
            before = packet.mark
            outcome = None
            if target in TARGETS:
                outcome = TARGETS[target](packet, rec["target_options"], table)
            hits.append(Hit(table, chain, line, rec["text"], target or "", before, packet.mark,
                            packet.conn.mark if packet.conn else None))
            if target is None or outcome == "CONTINUE":
                continue
            if target in TARGETS:
                return outcome
            result = self._chain(table, target, packet, hits, depth + 1)
            if rec["jump"] == "-g" or result not in (None, "RETURN"):
                return result
        return None


def _opts(options: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {o["option"]: o["args"] for o in options}


def _set_mark(old: int, opts: dict[str, list[str]]) -> int | None:
    """Return ``old`` after ``--set-xmark V/M`` (clear M, then xor V) or ``--set-mark V/M``
    (clear M, then or V); None if neither option is present."""
    if "--set-xmark" in opts:
        value, mask = _mark_value(opts["--set-xmark"][0])
        return (old & ~mask & 0xFFFFFFFF) ^ value
    if "--set-mark" in opts:
        value, mask = _mark_value(opts["--set-mark"][0])
        return (old & ~mask & 0xFFFFFFFF) | value
    return None


def _mark_target(packet: Packet, options: list[dict[str, Any]], table: str) -> str:
    opts = _opts(options)
    new = _set_mark(packet.mark, opts)
    if new is not None:
        packet.mark = new
    elif "--and-mark" in opts:
        packet.mark &= int(opts["--and-mark"][0], 16)
    elif "--or-mark" in opts:
        packet.mark |= int(opts["--or-mark"][0], 16)
    elif "--xor-mark" in opts:
        packet.mark ^= int(opts["--xor-mark"][0], 16)
    return "CONTINUE"


def _connmark_target(packet: Packet, options: list[dict[str, Any]], table: str) -> str:
    conn = packet.conn
    if conn is None:
        return "CONTINUE"
    opts = _opts(options)
    nfmask = int(opts.get("--nfmask", opts.get("--mask", ["0xffffffff"]))[0], 16)
    ctmask = int(opts.get("--ctmask", opts.get("--mask", ["0xffffffff"]))[0], 16)
    if "--save-mark" in opts:
        conn.mark = (conn.mark & ~ctmask & 0xFFFFFFFF) ^ (packet.mark & nfmask)
    elif "--restore-mark" in opts:
        packet.mark = (packet.mark & ~nfmask & 0xFFFFFFFF) ^ (conn.mark & ctmask)
    elif (new := _set_mark(conn.mark, opts)) is not None:
        conn.mark = new
    else:
        raise UnsupportedRule(f"CONNMARK {options} is not modelled")
    return "CONTINUE"


def _tproxy_target(packet: Packet, options: list[dict[str, Any]], table: str) -> str:
    opts = _opts(options)
    value, mask = _mark_value(opts.get("--tproxy-mark", ["0x0/0x0"])[0])
    ip = ipv4.to_int(opts["--on-ip"][0]) if "--on-ip" in opts else 0
    packet.tproxy = (ip or packet.dst, int(opts["--on-port"][0]))
    packet.mark = (packet.mark & ~mask & 0xFFFFFFFF) ^ value
    return "ACCEPT"


def _ct_target(packet: Packet, options: list[dict[str, Any]], table: str) -> str:
    """``CT --zone N``: the packet's connection is looked up (or created) in zone N. Only in the
    raw table, and only for a packet conntrack has not attached yet (xt_CT does nothing to a
    packet that has an entry already, such as one looped back with its own)."""
    opts = _opts(options)
    if table != "raw":
        raise UnsupportedRule(f"CT in table {table}: the kernel accepts it in raw only")
    if set(opts) != {"--zone"}:
        raise UnsupportedRule(f"CT {' '.join(opts)}: only --zone N is modelled")
    if packet.conn is None:
        packet.zone = int(opts["--zone"][0])
    return "CONTINUE"


def _nat_target(kind: str) -> Callable[[Packet, list[dict[str, Any]], str], str]:
    def apply(packet: Packet, options: list[dict[str, Any]], table: str) -> str:
        opts = _opts(options)
        conn = packet.conn
        if conn is None:
            return "ACCEPT"
        if kind == "REDIRECT":
            port = int(opts["--to-ports"][0].split("-")[0]) if "--to-ports" in opts else packet.dport
            conn.dnat = (packet.redirect_ip, port)
        else:
            spec = opts["--to-destination" if kind == "DNAT" else "--to-source"][0]
            addr, _, port = spec.partition(":")
            pair = (ipv4.to_int(addr), int(port) if port else (packet.dport if kind == "DNAT" else packet.sport))
            if kind == "DNAT":
                conn.dnat = pair
            else:
                conn.snat = pair
        return "ACCEPT"

    return apply


def _masquerade_target(packet: Packet, options: list[dict[str, Any]], table: str) -> str:
    """SNAT to the address of the out device toward the next hop (``masquerade_ip``, set by the
    Network when it routes). The port is kept: with ``--random-fully`` the kernel picks a random
    one instead, which no walk can predict (the walks say so where it matters)."""
    opts = _opts(options)
    if "--to-ports" in opts:
        raise UnsupportedRule("MASQUERADE --to-ports is not modelled")
    conn = packet.conn
    if conn is not None:
        if not packet.masquerade_ip:
            raise UnsupportedRule("MASQUERADE: the out device has no address")
        conn.snat = (packet.masquerade_ip, packet.sport)
    return "ACCEPT"


TARGETS: dict[str, Callable[[Packet, list[dict[str, Any]], str], str]] = {
    "ACCEPT": lambda p, o, t: "ACCEPT",
    "DROP": lambda p, o, t: "DROP",
    "REJECT": lambda p, o, t: "DROP",
    "RETURN": lambda p, o, t: "RETURN",
    "LOG": lambda p, o, t: "CONTINUE",
    "TRACE": lambda p, o, t: "CONTINUE",
    "MARK": _mark_target,
    "CONNMARK": _connmark_target,
    "TPROXY": _tproxy_target,
    "REDIRECT": _nat_target("REDIRECT"),
    "DNAT": _nat_target("DNAT"),
    "SNAT": _nat_target("SNAT"),
    "MASQUERADE": _masquerade_target,
    "CT": _ct_target,
}
MATCHES = ("-s", "-d", "-i", "-o", "-p", "tcp/udp --sport/--dport", "mark", "connmark",
           "conntrack --ctstate NEW/ESTABLISHED/RELATED (never related)", "set --match-set src|dst", "owner --socket-exists", "comment",
           "statistic --mode random --probability (pinned)", "addrtype --src-type/--dst-type LOCAL")


def branches(rules: Ruleset, table: str, chain: str) -> list[dict[str, Any]]:
    """Return the branches of ``chain`` in ``table`` (kube-proxy's ``KUBE-SVC-…``) in order: each
    rule with a random draw, and the chain's last rule (the one taken when every draw failed).
    For each: its line, the probability it is written with (1 for the last rule), the chance a new
    connection takes it (that probability times the chance that every earlier draw failed), its
    target chain and its text. Other rules (kube-proxy's mark-for-masquerade jump, which returns)
    are not branches."""
    entries = rules.chains[(table, chain)]
    out, left = [], 1.0
    for i, (_, rec, line) in enumerate(entries):
        if rec.get("target") is None or (line not in rules._random and i != len(entries) - 1):
            continue
        written = 1.0
        for match in rec["matches"]:
            for opt in match["options"]:
                if match["module"] == "statistic" and opt["option"] == "--probability":
                    written = float(opt["args"][0])
        out.append({"line": line, "probability": written, "chance": left * written, "target": rec["target"],
                    "text": rec["text"]})
        left *= 1.0 - written
    return out


def pinned_text(text: str, rules: Ruleset) -> str:
    """Return iptables-save ``text`` (the text ``rules`` was compiled from) with the pins of
    ``rules`` written into it, for the kernel: the pinned branch's ``--probability`` becomes 1
    and every earlier one 0 in its chain, so that the kernel follows the branch the tracer
    follows. Line numbers are kept."""
    lines = text.split("\n")
    for (table, chain), winner in rules.winners.items():
        for _, _rec, line in rules.chains[(table, chain)]:
            if line in rules._random and line <= winner:
                value = "1.00000000000" if line == winner else "0.00000000000"
                old = lines[line - 1]
                lines[line - 1] = re.sub(r"--probability \S+", f"--probability {value}", old)
    return "\n".join(lines)
