"""``ipset list`` (one or more sets; header, members, comments, timeouts, counters)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.common import address_family, check_hex, check_name, split_prefix
from ambientlab.core.parse.lexer import DECIMAL, Line, TokenCursor, is_blank, lines_of, split_words
from ambientlab.core.tables import Column, frame_from_records, records_from_frame

SET_SCHEMA: tuple[Column, ...] = (
    Column("name", "string", "set name"),
    Column("type", "string", "set type, e.g. `hash:ip`"),
    Column("revision", "Int64", "set type revision (0 on the 2022 nodes, 6+ on newer kernels)"),
    Column("family", "string", "`inet` or `inet6`"),
    Column("hashsize", "Int64", "initial hash size"),
    Column("maxelem", "Int64", "maximum number of members"),
    Column("timeout", "Int64", "default member timeout in seconds (set created with `timeout`)"),
    Column("counters", "boolean", "set created with `counters`"),
    Column("comment", "boolean", "set created with `comment`"),
    Column("skbinfo", "boolean", "set created with `skbinfo`"),
    Column("forceadd", "boolean", "set created with `forceadd`"),
    Column("bucketsize", "Int64", "hash bucket size (newer kernels)"),
    Column("initval", "string", "hash seed (newer kernels)"),
    Column("netmask", "Int64", "netmask applied to members"),
    Column("range", "string", "`range FROM-TO` of a bitmap set (ports, or IPv4 addresses)"),
    Column("size", "Int64", "`size` of a list:set"),
    Column("markmask", "string", "`markmask` of a hash:ip,mark set"),
    Column("bitmask", "string", "`bitmask` applied to members (ipset ≥ 7.17)"),
    Column("memsize", "Int64", "`Size in memory` in bytes"),
    Column("references", "Int64", "number of iptables rules (and sets) that use the set"),
    Column("numentries", "Int64", "`Number of entries`"),
)
MEMBER_SCHEMA: tuple[Column, ...] = (
    Column("set", "string", "name of the set the member belongs to"),
    Column("elem", "string", "the member as printed (`10.244.2.5`, `10.0.0.1,tcp:80`, `2001:db8::/64`)"),
    Column("timeout", "Int64", "seconds left"),
    Column("packets", "Int64", "packet counter"),
    Column("bytes", "Int64", "byte counter"),
    Column("comment", "string", "comment (the 2022 CNI wanted the pod UID here)"),
    Column("skbmark", "string", "skbinfo mark"),
    Column("skbprio", "string", "skbinfo priority"),
    Column("skbqueue", "Int64", "skbinfo queue"),
    Column("nomatch", "boolean", "`nomatch` member"),
)

HEADER_INT = ("hashsize", "maxelem", "timeout", "bucketsize", "netmask", "size")
HEADER_FLAGS = ("counters", "comment", "skbinfo", "forceadd")
FIELDS = ("Name", "Type", "Revision", "Header", "Size in memory", "References", "Number of entries")


@dataclass
class IpsetList:
    """The parsed text of ``ipset list``: ``sets`` (one row per set) and ``members``."""

    sets: pd.DataFrame
    members: pd.DataFrame

    def records(self) -> list[dict[str, Any]]:
        """Return one record per set, with its members as a list under ``members``."""
        out = records_from_frame(self.sets, SET_SCHEMA)
        members = records_from_frame(self.members, MEMBER_SCHEMA)
        for rec in out:
            rec["members"] = [{k: v for k, v in m.items() if k != "set"} for m in members if m["set"] == rec["name"]]
        return out


def _header(cur: TokenCursor, rec: dict[str, Any]) -> None:
    seen: set[str] = set()
    while not cur.done():
        word = cur.next()
        if word in seen:
            raise cur.error(word, "header keyword repeated")
        seen.add(word)
        if word == "family":
            rec["family"] = cur.next("a family")
            if rec["family"] not in ("inet", "inet6"):
                raise cur.error(rec["family"], "unknown family")
        elif word in HEADER_INT:
            rec[word] = cur.next_int(word)
        elif word in HEADER_FLAGS:
            rec[word] = True
        elif word in ("initval", "markmask", "bitmask"):
            rec[word] = check_hex(cur, cur.next("a value")) if word != "bitmask" else cur.next("a mask")
        elif word == "range":
            rec["range"] = _range(cur, cur.next("a range"))
        else:
            raise cur.error(word, "unknown ipset header keyword")


def _range(cur: TokenCursor, word: str) -> str:
    lo, dash, hi = word.partition("-")
    if not dash:
        raise cur.error(word, "expected a range FROM-TO")
    for part in (lo, hi):
        if address_family(part) != "inet":
            cur.uint(part, "a port", 16)
    return word


MAC = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){5}")


def _check_elem(cur: TokenCursor, elem: str, set_rec: dict[str, Any]) -> None:
    """Raise ParseError unless each part of ``elem`` fits the set type's part (ip, net, port, …)
    and the addresses are of the set's family."""
    kind, _, parts = str(set_rec.get("type", "")).partition(":")
    names = parts.split(",")
    values = elem.split(",")
    if kind == "list" or not parts:
        check_name(cur, elem, "set name")
        return
    if len(values) != len(names):
        raise cur.error(elem, f"a {set_rec.get('type')} member has {len(names)} parts")
    family = set_rec.get("family", "inet") if kind == "hash" else "inet"
    for name, value in zip(names, values, strict=True):
        if name in ("ip", "net"):
            addr = value
            if kind == "bitmap" or "-" in value:
                addr = value.partition("-")[0] if "-" in value else value
            split_prefix(cur, addr, family)
        elif name == "port":
            proto, colon, port = value.rpartition(":")
            if kind == "bitmap" or not colon:
                cur.uint(value if not colon else port, "a port", 16)
            elif not proto or not (DECIMAL.fullmatch(port) or port.replace("-", "").isalnum()):
                raise cur.error(value, "expected PROTO:PORT")
        elif name == "mac":
            if not MAC.fullmatch(value):
                raise cur.error(value, "not a MAC address as ipset prints it")
        elif name == "mark":
            check_hex(cur, value)
        elif name == "iface":
            check_name(cur, value.removeprefix("physdev:"), "interface name")
        else:
            raise cur.error(set_rec.get("type", ""), "unknown set type part")


def _member(cur: TokenCursor, set_rec: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {"set": set_rec["name"], "elem": cur.next("a member")}
    _check_elem(cur, rec["elem"], set_rec)
    while not cur.done():
        word = cur.next()
        if word in rec:
            raise cur.error(word, "member option repeated")
        if word in ("timeout", "skbqueue"):
            rec[word] = cur.next_int(word)
        elif word in ("packets", "bytes"):
            rec[word] = cur.next_int(word, 64)
        elif word in ("comment", "skbmark", "skbprio"):
            rec[word] = cur.next(word)
        elif word == "nomatch":
            rec["nomatch"] = True
        else:
            raise cur.error(word, "unknown ipset member option")
    return rec


def parse_ipset(text: str, source: str = "<text>", *, cut: bool = False) -> IpsetList:
    """Return the sets and members of ``ipset list`` text.

    ``Number of entries`` (when printed) must equal the members listed: a truncated list is a
    ParseError, not a shorter table. In a set with a default ``timeout`` more members may be
    listed than counted (entries that expired and were not yet collected are still counted
    the other way round by some kernels; ipset lists what it finds). ``ipset list -t`` (terse)
    prints no ``Members:`` line: a file where no set has one is read as that (no members), a
    file where only some have one is an error. An empty text is no sets:
    ``ipset list`` prints nothing when there are none. ``cut``: see
    :func:`~ambientlab.core.parse.lexer.lines_of`.
    """
    sets: list[dict[str, Any]] = []
    set_lines: list[int] = []
    members: list[dict[str, Any]] = []
    member_lines: list[int] = []
    in_members = False
    expected: dict[str, str] = {"Name": "Name"}

    def finish(last: Line) -> None:
        if not sets:
            return
        rec = sets[-1]
        missing = [f for f in ("Type", "Header") if f not in expected]
        if missing:
            raise ParseError(source, last.number, last.text, f"set {rec.get('name')!r} is incomplete (no {missing})")
        terse.append((last, in_members))
        if not in_members:
            return
        count = sum(1 for m in members if m["set"] == rec["name"])
        if "numentries" in rec and rec["numentries"] != count and not ("timeout" in rec and count > rec["numentries"]):
            raise ParseError(source, last.number, last.text, f"set {rec['name']!r} says {rec['numentries']} entries but lists {count}")

    last = Line(0, "")
    names: set[str] = set()
    terse: list[tuple[Line, bool]] = []  # (last line, has Members:) of each set
    for line in lines_of(text, source, cut):
        if is_blank(line.text):
            continue
        if in_members and not line.text.startswith("Name:"):
            cur = TokenCursor.of(line, source, quoted=True)
            members.append(_member(cur, sets[-1]))
            member_lines.append(line.number)
            last = line
            continue
        field, colon, value = line.text.partition(":")
        cur = TokenCursor(split_words(value), source, line.number)
        if not colon or field not in FIELDS + ("Members",):
            raise cur.error(line.text, "unknown ipset list line")
        if field == "Name":
            finish(last)
            name = cur.next("a set name")
            if name in names:
                raise cur.error(name, "set listed twice")
            names.add(name)
            sets.append({"name": name})
            set_lines.append(line.number)
            in_members = False
            expected = {}
        elif not sets:
            raise cur.error(field, "ipset field before 'Name:'")
        elif field in expected:
            raise cur.error(field, "field repeated")
        elif field == "Members":
            if value.strip():
                raise cur.error(value.strip(), "text after 'Members:'")
            in_members = True
        elif field == "Type":
            sets[-1]["type"] = cur.next("a type")
            if ":" not in sets[-1]["type"]:
                raise cur.error(sets[-1]["type"], "not a set type (METHOD:DATATYPES)")
        elif field == "Header":
            _header(cur, sets[-1])
        else:
            sets[-1][_KEYS[field]] = cur.next_int(field, 64 if field == "Size in memory" else 32)
        if field != "Name":
            expected[field] = field
        if not cur.done():
            raise cur.unexpected()
        last = line
    finish(last)
    if any(has for _, has in terse) and not all(has for _, has in terse):  # ipset list -t prints no Members:
        where = next(line for line, has in terse if not has)
        raise ParseError(source, where.number, where.text, "set is incomplete (no Members:), unlike the others")
    return IpsetList(
        frame_from_records(sets, SET_SCHEMA, set_lines),
        frame_from_records(members, MEMBER_SCHEMA, member_lines),
    )


_KEYS = {
    "Name": "name", "Type": "type", "Revision": "revision", "Header": "family",
    "Size in memory": "memsize", "References": "references", "Number of entries": "numentries",
}
