"""``iptables-save`` output: tables, chains with policies and counters, and rules as
structured matches and targets (``!`` negations kept). Also renders rules back to text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.common import address_family
from ambientlab.core.parse.lexer import DECIMAL, TokenCursor, is_blank, lines_of
from ambientlab.core.tables import Column, frame_from_records, records_from_frame

BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}
# Option name -> number of arguments, per match module ("" = the built-in matches).
MATCH_OPTIONS: dict[str, dict[str, int]] = {
    "": {"-s": 1, "-d": 1, "-i": 1, "-o": 1, "-p": 1, "-f": 0},
    "tcp": {"--sport": 1, "--dport": 1, "--tcp-flags": 2, "--syn": 0, "--tcp-option": 1},
    "udp": {"--sport": 1, "--dport": 1},
    "icmp": {"--icmp-type": 1},
    "set": {"--match-set": 2, "--return-nomatch": 0, "--update-counters": 0, "--update-subcounters": 0},
    "mark": {"--mark": 1},
    "connmark": {"--mark": 1},
    "conntrack": {
        "--ctstate": 1, "--ctproto": 1, "--ctorigsrc": 1, "--ctorigdst": 1, "--ctreplsrc": 1,
        "--ctrepldst": 1, "--ctorigsrcport": 1, "--ctorigdstport": 1, "--ctreplsrcport": 1,
        "--ctrepldstport": 1, "--ctstatus": 1, "--ctexpire": 1, "--ctdir": 1,
    },
    "state": {"--state": 1},
    "owner": {"--uid-owner": 1, "--gid-owner": 1, "--socket-exists": 0, "--suppl-groups": 0},
    "comment": {"--comment": 1},
    "statistic": {"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1},
    "addrtype": {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0},
    "multiport": {"--sports": 1, "--dports": 1, "--ports": 1},
    "socket": {"--transparent": 0, "--nowildcard": 0, "--restore-skmark": 0},
    "physdev": {
        "--physdev-in": 1, "--physdev-out": 1, "--physdev-is-in": 0, "--physdev-is-out": 0,
        "--physdev-is-bridged": 0,
    },
    "limit": {"--limit": 1, "--limit-burst": 1},
    "iprange": {"--src-range": 1, "--dst-range": 1},
    "mac": {"--mac-source": 1},
    "rpfilter": {"--loose": 0, "--validmark": 0, "--accept-local": 0, "--invert": 0},
    "recent": {
        "--set": 0, "--rcheck": 0, "--update": 0, "--remove": 0, "--seconds": 1, "--reap": 0, "--hitcount": 1,
        "--rttl": 0, "--name": 1, "--mask": 1, "--rsource": 0, "--rdest": 0,
    },
    "icmp6": {"--icmpv6-type": 1},
    "pkttype": {"--pkt-type": 1},
    "sctp": {"--sport": 1, "--dport": 1, "--chunk-types": 2},
    "hashlimit": {
        "--hashlimit-upto": 1, "--hashlimit-above": 1, "--hashlimit-burst": 1, "--hashlimit-mode": 1,
        "--hashlimit-name": 1, "--hashlimit-htable-size": 1, "--hashlimit-htable-max": 1,
        "--hashlimit-htable-expire": 1, "--hashlimit-htable-gcinterval": 1, "--hashlimit-srcmask": 1,
        "--hashlimit-dstmask": 1, "--hashlimit-rate-match": 0, "--hashlimit-rate-interval": 1,
    },
    "ttl": {"--ttl-eq": 1, "--ttl-lt": 1, "--ttl-gt": 1},
    "hl": {"--hl-eq": 1, "--hl-lt": 1, "--hl-gt": 1},
    "time": {
        "--datestart": 1, "--datestop": 1, "--timestart": 1, "--timestop": 1, "--monthdays": 1,
        "--weekdays": 1, "--kerneltz": 0, "--contiguous": 0,
    },
    "connlimit": {"--connlimit-upto": 1, "--connlimit-above": 1, "--connlimit-mask": 1, "--connlimit-saddr": 0,
                  "--connlimit-daddr": 0},
    "nfacct": {"--nfacct-name": 1},
    "length": {"--length": 1},
    "helper": {"--helper": 1},
    "tcpmss": {"--mss": 1},
    "dscp": {"--dscp": 1, "--dscp-class": 1},
    "tos": {"--tos": 1},
    "quota": {"--quota": 1},
    "devgroup": {"--src-group": 1, "--dst-group": 1},
    "ipvs": {"--ipvs": 0, "--vproto": 1, "--vaddr": 1, "--vport": 1, "--vdir": 1, "--vmethod": 1, "--vportctl": 1},
    "policy": {"--dir": 1, "--pol": 1, "--strict": 0, "--reqid": 1, "--spi": 1, "--proto": 1, "--mode": 1,
               "--tunnel-src": 1, "--tunnel-dst": 1, "--next": 0},
    "cgroup": {"--path": 1, "--cgroup": 1},
}
TARGET_OPTIONS: dict[str, dict[str, int]] = {
    "ACCEPT": {}, "DROP": {}, "RETURN": {}, "QUEUE": {}, "TRACE": {}, "NOTRACK": {},
    "REJECT": {"--reject-with": 1},
    "MARK": {"--set-xmark": 1, "--set-mark": 1, "--and-mark": 1, "--or-mark": 1, "--xor-mark": 1},
    "CONNMARK": {
        "--save-mark": 0, "--restore-mark": 0, "--set-xmark": 1, "--set-mark": 1, "--nfmask": 1,
        "--ctmask": 1, "--mask": 1, "--and-mark": 1, "--or-mark": 1, "--xor-mark": 1,
    },
    "TPROXY": {"--on-port": 1, "--on-ip": 1, "--tproxy-mark": 1},
    "REDIRECT": {"--to-ports": 1, "--random": 0},
    "DNAT": {"--to-destination": 1, "--random": 0, "--persistent": 0},
    "SNAT": {"--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0},
    "MASQUERADE": {"--to-ports": 1, "--random": 0, "--random-fully": 0},
    "LOG": {
        "--log-prefix": 1, "--log-level": 1, "--log-tcp-sequence": 0, "--log-tcp-options": 0,
        "--log-ip-options": 0, "--log-uid": 0,
    },
    "CT": {"--notrack": 0, "--zone": 1, "--zone-orig": 1, "--zone-reply": 1, "--helper": 1, "--ctevents": 1,
           "--expevents": 1, "--timeout": 1},
    "CHECKSUM": {"--checksum-fill": 0},
    "TCPMSS": {"--clamp-mss-to-pmtu": 0, "--set-mss": 1},
    "NFLOG": {"--nflog-group": 1, "--nflog-prefix": 1, "--nflog-range": 1, "--nflog-size": 1, "--nflog-threshold": 1},
    "NFQUEUE": {"--queue-num": 1, "--queue-balance": 1, "--queue-bypass": 0, "--fail-open": 0, "--queue-cpu-fanout": 0},
    "DSCP": {"--set-dscp": 1, "--set-dscp-class": 1},
    "CLASSIFY": {"--set-class": 1},
    "SET": {"--add-set": 2, "--del-set": 2, "--map-set": 2, "--timeout": 1, "--exist": 0, "--map-mark": 0,
            "--map-prio": 0, "--map-queue": 0},
}
# Options whose argument iptables-save prints with xtables_save_string (quoted when needed).
QUOTED = ("--comment", "--log-prefix", "--nflog-prefix")

CHAIN_SCHEMA: tuple[Column, ...] = (
    Column("table", "string", "table: raw, mangle, nat, filter or security"),
    Column("chain", "string", "chain name"),
    Column("policy", "string", "policy of a built-in chain (ACCEPT/DROP); `-` for user chains"),
    Column("packets", "Int64", "policy packet counter"),
    Column("bytes", "Int64", "policy byte counter"),
    Column("builtin", "boolean", "the chain is one of the table's built-in chains"),
)
RULE_SCHEMA: tuple[Column, ...] = (
    Column("table", "string", "table (missing for an excerpt without `*table` lines)"),
    Column("chain", "string", "chain the rule is appended to (`-A`)"),
    Column("rule", "Int64", "1-based position of the rule in its chain (within the file)"),
    Column("packets", "Int64", "rule packet counter (`iptables-save -c`)"),
    Column("bytes", "Int64", "rule byte counter"),
    Column("matches", "object", "`[{module, options: [{option, args, negated}]}]` in printed order; module `\"\"` holds -s/-d/-i/-o/-p/-f"),
    Column("jump", "string", "`-j` (jump) or `-g` (goto); missing for a rule without target"),
    Column("target", "string", "target: ACCEPT, MARK, TPROXY, … or a user chain"),
    Column("target_options", "object", "`[{option, args}]` of the target"),
    Column("text", "string", "the rule as printed, after `-A CHAIN`"),
)


SECTION_SCHEMA: tuple[Column, ...] = (
    Column("table", "string", "the table of a `*table` … `COMMIT` block"),
    Column("commit", "Int64", "line of its `COMMIT`"),
)


@dataclass
class IptablesSave:
    """The parsed text of ``iptables-save``: ``chains``, ``rules`` and ``comments`` frames, and
    ``sections``: one row per ``*table`` block (index: its line), so that a file holding
    ``iptables-save`` and ``ip6tables-save`` output (two ``*mangle`` blocks) renders back as it was."""

    chains: pd.DataFrame
    rules: pd.DataFrame
    comments: pd.DataFrame
    sections: pd.DataFrame = field(default_factory=lambda: frame_from_records([], SECTION_SCHEMA))

    def records(self) -> list[dict[str, Any]]:
        """Return chain and rule records in file order, each tagged ``kind: chain|rule``."""
        chains = [{"kind": "chain", **r} for r in records_from_frame(self.chains, CHAIN_SCHEMA)]
        rules = [{"kind": "rule", **r} for r in records_from_frame(self.rules, RULE_SCHEMA)]
        lines = list(self.chains.index) + list(self.rules.index)
        return [rec for _, rec in sorted(zip(lines, chains + rules, strict=True), key=lambda p: p[0])]


def _port(cur: TokenCursor, word: str, sep: str = ":") -> None:
    lo, dash, hi = word.partition(sep)
    for part in (lo, hi) if dash else (lo,):
        if not part.isascii() or not part.isdigit():
            if part.replace("-", "").isalnum() and part.isascii() and not part[0].isdigit():
                continue  # a service name (iptables-save prints numbers, hand-written rules names)
            raise cur.error(word, "bad port")
        cur.uint(part, "a port", 16)


def _mark(cur: TokenCursor, word: str) -> None:
    value, slash, mask = word.partition("/")
    cur.uint(value, "a mark", 32, hexadecimal=value.startswith("0x"))
    if slash:
        cur.uint(mask, "a mask", 32, hexadecimal=mask.startswith("0x"))


def _ports(cur: TokenCursor, word: str) -> None:
    for part in word.split(","):
        _port(cur, part)


def _address(cur: TokenCursor, word: str) -> None:
    addr, slash, mask = word.partition("/")
    family = address_family(addr)
    if family is None:
        if not addr or not addr.isascii() or not addr.isprintable():
            raise cur.error(word, "not an address or host name")
        return  # a host name, as written by hand
    if slash:
        limit = 32 if family == "inet" else 128
        if DECIMAL.fullmatch(mask):
            if int(mask) > limit:
                raise cur.error(word, "bad prefix length")
        elif address_family(mask) != family:
            raise cur.error(word, "bad netmask")


VALIDATE = {
    ("tcp", "--sport"): _port, ("tcp", "--dport"): _port, ("udp", "--sport"): _port, ("udp", "--dport"): _port,
    ("sctp", "--sport"): _port, ("sctp", "--dport"): _port, ("multiport", "--sports"): _ports,
    ("multiport", "--dports"): _ports, ("multiport", "--ports"): _ports,
    ("mark", "--mark"): _mark, ("connmark", "--mark"): _mark,
    ("MARK", "--set-xmark"): _mark, ("MARK", "--set-mark"): _mark, ("CONNMARK", "--set-xmark"): _mark,
    ("CONNMARK", "--set-mark"): _mark, ("TPROXY", "--tproxy-mark"): _mark,
    ("TPROXY", "--on-port"): _port, ("REDIRECT", "--to-ports"): lambda cur, w: _port(cur, w, "-"),
    ("", "-s"): _address, ("", "-d"): _address,
}


def _options(cur: TokenCursor, table: dict[str, int], what: str, module: str = "") -> tuple[str, list[str]]:
    word = cur.next(f"a {what} option")
    if word not in table:
        raise cur.error(word, f"unknown {what} option")
    args = [cur.next(f"an argument of {word}") for _ in range(table[word])]
    check = VALIDATE.get((module, word))
    if check is not None:
        check(cur, args[0])
    return word, args


def parse_rule_spec(cur: TokenCursor, user_chains: set[str] | None) -> dict[str, Any]:
    """Return ``matches``/``jump``/``target``/``target_options`` of a rule specification.

    ``user_chains`` are the valid non-builtin targets; None accepts any name (excerpts).
    """
    matches: list[dict[str, Any]] = []
    rec: dict[str, Any] = {"matches": matches}
    while not cur.done():
        negated = cur.take("!")
        word = cur.peek()
        if word == "-m" and not negated:
            cur.next()
            module = cur.next("a match module")
            if module not in MATCH_OPTIONS or module == "":
                raise cur.error(module, "unknown match module")
            matches.append({"module": module, "options": []})
            continue
        if word in ("-j", "-g") and not negated:
            cur.next()
            target = cur.next("a target")
            rec["jump"], rec["target"] = word, target
            if target in TARGET_OPTIONS:
                table = TARGET_OPTIONS[target]
            elif user_chains is None or target in user_chains:
                table = {}
            else:
                raise cur.error(target, "unknown target (not a known target nor a declared chain)")
            opts = []
            while not cur.done():
                option, args = _options(cur, table, f"{target} target", target)
                if any(o["option"] == option for o in opts):
                    raise cur.error(option, "target option repeated")
                opts.append({"option": option, "args": args})
            rec["target_options"] = opts
            break
        if word in MATCH_OPTIONS[""]:
            if not matches or matches[-1]["module"] != "":
                matches.append({"module": "", "options": []})
        elif not matches or matches[-1]["module"] == "":
            raise cur.error(word or "", "unknown rule option")
        block = matches[-1]
        option, args = _options(cur, MATCH_OPTIONS[block["module"]], f"'{block['module'] or 'ip'}' match", block["module"])
        if any(o["option"] == option for o in block["options"]):
            raise cur.error(option, "option repeated in one match")
        block["options"].append({"option": option, "args": args, "negated": negated})
    return rec


def parse_iptables_save(text: str, source: str = "<text>", *, excerpt: bool = False, cut: bool = False) -> IptablesSave:
    """Return the chains, rules, comment lines and table blocks of ``iptables-save`` text.

    Every table must end with ``COMMIT`` and every rule must name a declared chain. A file may
    hold several dumps one after the other (``iptables-save; ip6tables-save``): each
    ``*table`` block stands on its own, and rules are numbered within their block. With
    ``excerpt=True`` (the output of ``iptables-save | grep …``) bare ``-A`` lines outside any
    ``*table`` are accepted, with ``table`` missing and any target name allowed. An empty text
    is no tables (``iptables-save`` prints nothing when no table is loaded). ``cut``: see
    :func:`~ambientlab.core.parse.lexer.lines_of`.
    """
    chains: list[dict[str, Any]] = []
    chain_lines: list[int] = []
    rules: list[dict[str, Any]] = []
    rule_lines: list[int] = []
    comments: list[dict[str, Any]] = []
    comment_lines: list[int] = []
    sections: list[dict[str, Any]] = []
    section_lines: list[int] = []
    table: str | None = None
    declared: dict[str, dict[str, Any]] = {}
    counts: dict[tuple[int, str], int] = {}
    last_number = 0
    for line in lines_of(text, source, cut):
        last_number = line.number
        if is_blank(line.text):
            continue
        stripped = line.text.strip(" \t")
        cur = TokenCursor.of(line, source, quoted=not stripped.startswith("#"))
        if stripped.startswith("#"):
            comments.append({"text": stripped})
            comment_lines.append(line.number)
            continue
        if stripped.startswith("*"):
            if table is not None:
                raise cur.error(stripped, f"table starts before COMMIT of *{table}")
            table = stripped[1:]
            if table not in BUILTIN_CHAINS:
                raise cur.error(stripped, "unknown table")
            declared = {}
            sections.append({"table": table})
            section_lines.append(line.number)
            continue
        if stripped == "COMMIT":
            if table is None:
                raise cur.error(stripped, "COMMIT outside a table")
            table = None
            sections[-1]["commit"] = line.number
            continue
        if stripped.startswith(":"):
            if table is None:
                raise cur.error(stripped, "chain declaration outside a table")
            name = cur.next()[1:]
            if not name or not name.isprintable() or len(name) > 28:
                raise cur.error(name, "not a chain name")
            policy = cur.next("a policy")
            builtin = name in BUILTIN_CHAINS[table]
            if (policy == "-") == builtin or policy not in ("-", "ACCEPT", "DROP"):
                raise cur.error(policy, f"bad policy for {'built-in' if builtin else 'user'} chain {name}")
            if name in declared:
                raise cur.error(name, "chain declared twice")
            rec = {"table": table, "chain": name, "policy": policy, "builtin": builtin}
            counters = cur.next("counters")
            rec["packets"], rec["bytes"] = _counters(cur, counters)
            if not cur.done():
                raise cur.unexpected()
            declared[name] = rec
            chains.append(rec)
            chain_lines.append(line.number)
            continue
        rule: dict[str, Any] = {}
        if cur.peek() and cur.peek().startswith("["):  # type: ignore[union-attr]
            rule["packets"], rule["bytes"] = _counters(cur, cur.next())
        if cur.next("-A") != "-A":
            raise cur.error(cur.words[cur.pos - 1], "expected -A (or [packets:bytes] -A)")
        chain = cur.next("a chain")
        if table is None and not excerpt:
            raise cur.error(chain, "rule outside a table (use excerpt mode for grep output)")
        if table is not None and chain not in declared:
            raise cur.error(chain, "rule for an undeclared chain")
        spec_start = cur.pos
        rule.update({"table": table, "chain": chain} if table else {"chain": chain})
        rule.update(parse_rule_spec(cur, None if table is None else set(declared)))
        rule["text"] = _spec_text(line.text, cur.words[spec_start - 1])
        section = len(sections) if table is not None else 0
        counts[(section, chain)] = counts.get((section, chain), 0) + 1
        rule["rule"] = counts[(section, chain)]
        rules.append(rule)
        rule_lines.append(line.number)
    if table is not None:
        raise ParseError(source, last_number, f"*{table}", "table has no COMMIT")
    return IptablesSave(
        frame_from_records(chains, CHAIN_SCHEMA, chain_lines),
        frame_from_records(rules, RULE_SCHEMA, rule_lines),
        frame_from_records(comments, (Column("text", "string", "comment line"),), comment_lines),
        frame_from_records(sections, SECTION_SCHEMA, section_lines),
    )


def _counters(cur: TokenCursor, word: str) -> tuple[int, int]:
    inner = word[1:-1].split(":") if word.startswith("[") and word.endswith("]") else []
    if len(inner) != 2 or not all(DECIMAL.fullmatch(p) for p in inner):
        raise cur.error(word, "expected [packets:bytes]")
    return cur.uint(inner[0], "a packet counter", 64), cur.uint(inner[1], "a byte counter", 64)


def _spec_text(line: str, chain: str) -> str:
    head = f"-A {chain} "
    at = line.find(head)
    return line[at + len(head):].strip() if at >= 0 else ""


_SAFE = set("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def quote_arg(value: str) -> str:
    """Return ``value`` quoted the way iptables-save quotes strings (only when needed)."""
    if value and set(value) <= _SAFE:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'") + '"'


def _needs_quotes(option: str) -> bool:
    return option in QUOTED


def render_rule_spec(rule: dict[str, Any]) -> str:
    """Return the text iptables-save prints after ``-A CHAIN`` for a rule record."""
    words: list[str] = []
    for block in rule.get("matches") or []:
        if block["module"]:
            words += ["-m", block["module"]]
        for opt in block["options"]:
            if opt["negated"]:
                words.append("!")
            words.append(opt["option"])
            words += [quote_arg(a) if _needs_quotes(opt["option"]) else a for a in opt["args"]]
    if isinstance(rule.get("target"), str):
        words += [rule["jump"], rule["target"]]
        for opt in rule.get("target_options") or []:
            words.append(opt["option"])
            words += [quote_arg(a) if _needs_quotes(opt["option"]) else a for a in opt["args"]]
    return " ".join(words)


def render_iptables_save(parsed: IptablesSave, *, comments: bool = False) -> str:
    """Return the text of the parsed dump: each ``*table`` block with its chains, rules (and
    counters) and ``COMMIT``, in file order; an excerpt's bare rules in their order. With
    ``comments`` the ``#`` lines are put back where they were, so that the text of a real
    ``iptables-save`` comes back as it was (blank lines and blanks at the line ends aside)."""
    items: list[tuple[int, int, str]] = []
    for line, table, commit in zip(parsed.sections.index, parsed.sections["table"], parsed.sections["commit"], strict=True):
        items.append((int(line), 0, f"*{table}"))
        items.append((int(commit), 0, "COMMIT"))
    for line, c in zip(parsed.chains.index, records_from_frame(parsed.chains, CHAIN_SCHEMA), strict=True):
        items.append((int(line), 0, f":{c['chain']} {c['policy']} [{c['packets']}:{c['bytes']}]"))
    for line, r in zip(parsed.rules.index, records_from_frame(parsed.rules, RULE_SCHEMA), strict=True):
        prefix = f"[{r['packets']}:{r['bytes']}] " if "packets" in r else ""
        spec = render_rule_spec(r)
        items.append((int(line), 0, f"{prefix}-A {r['chain']}" + (f" {spec}" if spec else "")))
    if comments:
        items += [(int(line), 0, text) for line, text in zip(parsed.comments.index, parsed.comments["text"], strict=True)]
    items.sort()
    return "".join(text + "\n" for _, _, text in items)
