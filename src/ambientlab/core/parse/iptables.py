"""``iptables-save`` output: tables, chains with policies and counters, and rules as
structured matches and targets (``!`` negations kept). Also renders rules back to text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.lexer import TokenCursor, lines_of
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
    "CT": {"--notrack": 0, "--zone": 1},
    "CHECKSUM": {"--checksum-fill": 0},
}

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


@dataclass
class IptablesSave:
    """The parsed text of ``iptables-save``: ``chains``, ``rules`` and ``comments`` frames."""

    chains: pd.DataFrame
    rules: pd.DataFrame
    comments: pd.DataFrame

    def records(self) -> list[dict[str, Any]]:
        """Return chain and rule records in file order, each tagged ``kind: chain|rule``."""
        chains = [{"kind": "chain", **r} for r in records_from_frame(self.chains, CHAIN_SCHEMA)]
        rules = [{"kind": "rule", **r} for r in records_from_frame(self.rules, RULE_SCHEMA)]
        lines = list(self.chains.index) + list(self.rules.index)
        return [rec for _, rec in sorted(zip(lines, chains + rules, strict=True), key=lambda p: p[0])]


def _options(cur: TokenCursor, table: dict[str, int], what: str) -> tuple[str, list[str]]:
    word = cur.next(f"a {what} option")
    if word not in table:
        raise cur.error(word, f"unknown {what} option")
    return word, [cur.next(f"an argument of {word}") for _ in range(table[word])]


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
                option, args = _options(cur, table, f"{target} target")
                opts.append({"option": option, "args": args})
            rec["target_options"] = opts
            break
        if word in MATCH_OPTIONS[""]:
            if not matches or matches[-1]["module"] != "":
                matches.append({"module": "", "options": []})
        elif not matches or matches[-1]["module"] == "":
            raise cur.error(word or "", "unknown rule option")
        block = matches[-1]
        option, args = _options(cur, MATCH_OPTIONS[block["module"]], f"'{block['module'] or 'ip'}' match")
        block["options"].append({"option": option, "args": args, "negated": negated})
    return rec


def parse_iptables_save(text: str, source: str = "<text>", *, excerpt: bool = False) -> IptablesSave:
    """Return the chains, rules and comment lines of ``iptables-save`` text.

    Every table must end with ``COMMIT`` and every rule must name a declared chain. With
    ``excerpt=True`` (the output of ``iptables-save | grep …``) bare ``-A`` lines outside any
    ``*table`` are accepted, with ``table`` missing and any target name allowed.
    """
    chains: list[dict[str, Any]] = []
    chain_lines: list[int] = []
    rules: list[dict[str, Any]] = []
    rule_lines: list[int] = []
    comments: list[dict[str, Any]] = []
    comment_lines: list[int] = []
    table: str | None = None
    declared: dict[str, dict[str, Any]] = {}
    counts: dict[tuple[str | None, str], int] = {}
    last_number = 0
    for line in lines_of(text):
        last_number = line.number
        stripped = line.text.strip()
        if not stripped:
            continue
        cur = TokenCursor.of(line, source, quoted=True)
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
            continue
        if stripped == "COMMIT":
            if table is None:
                raise cur.error(stripped, "COMMIT outside a table")
            table = None
            continue
        if stripped.startswith(":"):
            if table is None:
                raise cur.error(stripped, "chain declaration outside a table")
            name = cur.next()[1:]
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
        elif cur.peek() == "-c":
            cur.next()
            rule["packets"], rule["bytes"] = cur.next_int("packets"), cur.next_int("bytes")
        if cur.next("-A") != "-A":
            raise cur.error(cur.words[cur.pos - 1], "expected -A")
        chain = cur.next("a chain")
        if table is None and not excerpt:
            raise cur.error(chain, "rule outside a table (use excerpt mode for grep output)")
        if table is not None and chain not in declared:
            raise cur.error(chain, "rule for an undeclared chain")
        spec_start = cur.pos
        rule.update({"table": table, "chain": chain} if table else {"chain": chain})
        rule.update(parse_rule_spec(cur, None if table is None else set(declared)))
        rule["text"] = _spec_text(line.text, cur.words[spec_start - 1])
        counts[(table, chain)] = counts.get((table, chain), 0) + 1
        rule["rule"] = counts[(table, chain)]
        rules.append(rule)
        rule_lines.append(line.number)
    if table is not None:
        raise ParseError(source, last_number, f"*{table}", "table has no COMMIT")
    return IptablesSave(
        frame_from_records(chains, CHAIN_SCHEMA, chain_lines),
        frame_from_records(rules, RULE_SCHEMA, rule_lines),
        frame_from_records(comments, (Column("text", "string", "comment line"),), comment_lines),
    )


def _counters(cur: TokenCursor, word: str) -> tuple[int, int]:
    inner = word[1:-1].split(":") if word.startswith("[") and word.endswith("]") else []
    if len(inner) != 2 or not all(p.isdigit() for p in inner):
        raise cur.error(word, "expected [packets:bytes]")
    return int(inner[0]), int(inner[1])


def _spec_text(line: str, chain: str) -> str:
    head = f"-A {chain} "
    at = line.find(head)
    return line[at + len(head):].strip() if at >= 0 else ""


_SAFE = set("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def quote_arg(value: str) -> str:
    """Return ``value`` quoted the way iptables-save quotes strings (only when needed)."""
    if value and set(value) <= _SAFE:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _needs_quotes(option: str) -> bool:
    return option in ("--comment", "--log-prefix")


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


def render_iptables_save(parsed: IptablesSave) -> str:
    """Return iptables-restore input for the parsed tables (counters kept, comments dropped)."""
    out: list[str] = []
    chains = records_from_frame(parsed.chains, CHAIN_SCHEMA)
    rules = records_from_frame(parsed.rules, RULE_SCHEMA)
    for table in dict.fromkeys(c["table"] for c in chains):
        out.append(f"*{table}")
        for c in chains:
            if c["table"] == table:
                out.append(f":{c['chain']} {c['policy']} [{c['packets']}:{c['bytes']}]")
        for r in rules:
            if r.get("table") == table:
                prefix = f"[{r['packets']}:{r['bytes']}] " if "packets" in r else ""
                spec = render_rule_spec(r)
                out.append(f"{prefix}-A {r['chain']}" + (f" {spec}" if spec else ""))
        out.append("COMMIT")
    return "\n".join(out) + "\n"
