"""``ip rule`` (``ip rule show``, IPv4 or IPv6) as records with iproute2's ``-j`` keys."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.common import check_hex, check_mark, check_name, port_range, split_prefix
from ambientlab.core.parse.lexer import TokenCursor, is_blank, lines_of
from ambientlab.core.tables import Column, frame_from_records

SCHEMA: tuple[Column, ...] = (
    Column("priority", "Int64", "rule priority (`pref`), the order of evaluation"),
    Column("not", "boolean", "`not`: the selector is inverted", presence=True),
    Column("src", "string", "source address, or `all`"),
    Column("srclen", "Int64", "source prefix length (absent for `all` and host addresses)"),
    Column("dst", "string", "destination address (`to`)"),
    Column("dstlen", "Int64", "destination prefix length"),
    Column("tos", "string", "TOS value matched"),
    Column("fwmark", "string", "firewall mark value, hexadecimal"),
    Column("fwmask", "string", "mark mask, hexadecimal (absent means 0xffffffff)"),
    Column("iif", "string", "incoming interface"),
    Column("iif_detached", "boolean", "the `iif` device does not exist", presence=True),
    Column("oif", "string", "outgoing interface"),
    Column("oif_detached", "boolean", "the `oif` device does not exist", presence=True),
    Column("l3mdev", "boolean", "`lookup [l3mdev-table]`", presence=True),
    Column("uid_start", "Int64", "first uid of `uidrange`"),
    Column("uid_end", "Int64", "last uid of `uidrange`"),
    Column("ipproto", "string", "IP protocol matched"),
    Column("sport", "Int64", "source port"),
    Column("sport_start", "Int64", "first source port of a range"),
    Column("sport_end", "Int64", "last source port of a range"),
    Column("dport", "Int64", "destination port"),
    Column("dport_start", "Int64", "first destination port of a range"),
    Column("dport_end", "Int64", "last destination port of a range"),
    Column("tun_id", "Int64", "tunnel id matched"),
    Column("table", "string", "routing table looked up (`lookup`)"),
    Column("suppress_prefixlen", "Int64", "`suppress_prefixlength`: ignore routes this short or shorter"),
    Column("suppress_ifgroup", "string", "`suppress_ifgroup`"),
    Column("flow_from", "string", "realm of `realms FROM/TO`"),
    Column("flow_to", "string", "realm of `realms [FROM/]TO`"),
    Column("goto", "Int64", "`goto`: continue at this priority"),
    Column("unresolved", "boolean", "`[unresolved]`: no rule has the `goto` priority", presence=True),
    Column("action", "string", "`blackhole`, `unreachable`, `prohibit` or `nop` instead of a lookup"),
    Column("protocol", "string", "`proto`: who installed the rule (printed only when known)"),
)

ACTIONS = ("blackhole", "unreachable", "prohibit", "nop")


def _name_or_number(cur: TokenCursor, word: str, bits: int) -> str:
    """Return ``word``: a name, or a number below ``2**bits`` (the kernel field's width), verbatim."""
    if word[:1] in tuple("0123456789"):
        cur.uint(word, "a number", bits)
    elif not word.isprintable() or not word.isascii():
        raise cur.error(word, "not a name iproute2 prints")
    return word


def parse_rule_line(cur: TokenCursor) -> dict[str, Any]:
    """Return the record of one ``PRIO:<tab>selector action`` line."""
    head = cur.next("a priority")
    if not head.endswith(":") or not head[:-1].isascii() or not head[:-1].isdigit():
        raise cur.error(head, "expected 'PRIORITY:'")
    rec: dict[str, Any] = {"priority": cur.uint(head[:-1], "a priority")}
    if cur.take("not"):
        rec["not"] = None
    seen: set[str] = set()
    while not cur.done():
        word = cur.next()
        if word in seen or (word in ACTIONS and "action" in rec) or (word == "goto" and "action" in rec) \
                or (word in ACTIONS and "goto" in rec) or (word == "lookup" and "action" in rec) \
                or (word in ACTIONS + ("goto",) and ("table" in rec or "l3mdev" in rec)):
            raise cur.error(word, "keyword repeated, or a second action")
        seen.add(word)
        if word == "from":
            value = cur.next("a source")
            if value == "all":
                rec["src"] = "all"
            else:
                rec["src"], length = split_prefix(cur, value)
                if length is not None:
                    rec["srclen"] = length
        elif word == "to":
            rec["dst"], length = split_prefix(cur, cur.next("a destination"))
            if length is not None:
                rec["dstlen"] = length
        elif word == "tos":
            rec["tos"] = check_hex(cur, cur.next("a TOS"), 8)
        elif word == "fwmark":
            mark, slash, mask = cur.next("a mark").partition("/")
            rec["fwmark"] = check_mark(cur, mark)
            if slash:
                rec["fwmask"] = check_mark(cur, mask)
        elif word in ("iif", "oif"):
            rec[word] = check_name(cur, cur.next("a device"), "device name")
            if cur.take("[detached]"):
                rec[f"{word}_detached"] = None
        elif word == "lookup":
            table = cur.next("a table")
            if table == "[l3mdev-table]":
                rec["l3mdev"] = None
            else:
                rec["table"] = check_name(cur, table, "table")
                if table[0] in "0123456789":
                    cur.uint(table, "a table id")
        elif word == "uidrange":
            value = cur.next("a uid range")
            lo, dash, hi = value.partition("-")
            if not dash:
                raise cur.error(value, "bad uidrange")
            rec["uid_start"], rec["uid_end"] = cur.uint(lo, "a uid"), cur.uint(hi, "a uid")
        elif word == "ipproto":
            rec["ipproto"] = _name_or_number(cur, cur.next("a protocol"), 8)
        elif word in ("sport", "dport"):
            rec.update(port_range(cur, word, cur.next("a port")))
        elif word == "tun_id":
            rec["tun_id"] = cur.next_int("a tunnel id", 64)
        elif word == "suppress_prefixlength":
            rec["suppress_prefixlen"] = cur.next_int("a prefix length")
            if rec["suppress_prefixlen"] > 128:
                raise cur.error(str(rec["suppress_prefixlen"]), "bad prefix length")
        elif word == "suppress_ifgroup":
            rec["suppress_ifgroup"] = cur.next("a group")
        elif word == "realms":
            value = cur.next("realms")
            src, slash, dst = value.partition("/")
            if slash:
                rec["flow_from"], rec["flow_to"] = src, dst
            else:
                rec["flow_to"] = src
        elif word == "goto":
            rec["goto"] = cur.next_int("a priority")
            if cur.take("[unresolved]"):
                rec["unresolved"] = None
        elif word in ACTIONS:
            rec["action"] = word
        elif word == "proto":
            rec["protocol"] = _name_or_number(cur, cur.next("a protocol"), 8)
        else:
            raise cur.error(word, "unknown ip rule keyword")
    if "src" not in rec:
        raise cur.error(head, "rule has no 'from'")
    return rec


def parse_ip_rule_records(
    text: str, source: str = "<text>", *, cut: bool = False
) -> tuple[list[dict[str, Any]], list[int]]:
    """Return (records, line numbers) for the text of ``ip rule``; blank lines are skipped.

    An empty text is a ParseError: every namespace starts with three rules, so an empty
    capture is a failed command, not a namespace without rules. ``cut``: see
    :func:`~ambientlab.core.parse.lexer.lines_of`.
    """
    records, numbers = [], []
    if not text.strip(" \t\n"):
        raise ParseError(source, 1, text, "empty ip rule output (every namespace has rules; was the command run?)")
    families: set[str] = set()
    for line in lines_of(text, source, cut):
        if is_blank(line.text):
            continue
        cur = TokenCursor.of(line, source)
        rec = parse_rule_line(cur)
        for key in ("src", "dst"):
            if key in rec and rec[key] != "all":
                families.add("inet6" if ":" in rec[key] else "inet")
        if len(families) > 1:
            raise cur.error(rec.get("dst", rec["src"]), "IPv4 and IPv6 rules in one `ip rule` output")
        records.append(rec)
        numbers.append(line.number)
    return records, numbers


def parse_ip_rule(text: str, source: str = "<text>", *, cut: bool = False) -> pd.DataFrame:
    """Return the rules of ``ip rule`` text as a DataFrame (columns: :data:`SCHEMA`, index: line).

    An empty text is an error (see :func:`parse_ip_rule_records`)."""
    records, numbers = parse_ip_rule_records(text, source, cut=cut)
    return frame_from_records(records, SCHEMA, numbers)


def json_record(rec: dict[str, Any]) -> dict[str, Any]:
    """Return ``rec`` with the keys ``ip -j rule`` uses: the ``nop`` action is the key ``nop``."""
    if rec.get("action") != "nop":
        return rec
    out = {k: v for k, v in rec.items() if k != "action"}
    out["nop"] = None
    return out


def render_rule(rec: dict[str, Any]) -> str:
    """Return the line ``ip rule`` prints for ``rec`` (iproute2 6.1 order and spelling)."""
    out = [f"{rec['priority']}:\t" + ("not " if "not" in rec else "")]
    words: list[str] = []
    src = rec["src"] if rec["src"] == "all" or "srclen" not in rec else f"{rec['src']}/{rec['srclen']}"
    words += ["from", src]
    if "dst" in rec:
        words += ["to", rec["dst"] if "dstlen" not in rec else f"{rec['dst']}/{rec['dstlen']}"]
    if "tos" in rec:
        words += ["tos", rec["tos"]]
    if "fwmark" in rec:
        words += ["fwmark", rec["fwmark"] + (f"/{rec['fwmask']}" if "fwmask" in rec else "")]
    for dev in ("iif", "oif"):
        if dev in rec:
            words += [dev, rec[dev]] + (["[detached]"] if f"{dev}_detached" in rec else [])
    if "l3mdev" in rec:
        words += ["lookup", "[l3mdev-table]"]
    if "uid_start" in rec:
        words += ["uidrange", f"{rec['uid_start']}-{rec['uid_end']}"]
    if "ipproto" in rec:
        words += ["ipproto", rec["ipproto"]]
    for port in ("sport", "dport"):
        if port in rec:
            words += [port, str(rec[port])]
        elif f"{port}_start" in rec:
            words += [port, f"{rec[port + '_start']}-{rec[port + '_end']}"]
    if "tun_id" in rec:
        words += ["tun_id", str(rec["tun_id"])]
    if "table" in rec:
        words += ["lookup", rec["table"]]
        if "suppress_prefixlen" in rec:
            words += ["suppress_prefixlength", str(rec["suppress_prefixlen"])]
        if "suppress_ifgroup" in rec:
            words += ["suppress_ifgroup", rec["suppress_ifgroup"]]
    if "flow_to" in rec:
        words += ["realms", (f"{rec['flow_from']}/" if "flow_from" in rec else "") + rec["flow_to"]]
    if "goto" in rec:
        words += ["goto", str(rec["goto"])] + (["[unresolved]"] if "unresolved" in rec else [])
    if "action" in rec:
        words.append(rec["action"])
    elif "nop" in rec:  # the -j form of to_records
        words.append("nop")
    if "protocol" in rec:
        words += ["proto", rec["protocol"]]
    return out[0] + " ".join(words)
