"""``ipset list`` (one or more sets; header, members, comments, timeouts, counters)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.lexer import Line, TokenCursor, lines_of
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

HEADER_INT = ("hashsize", "maxelem", "timeout", "bucketsize", "netmask")
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
    while not cur.done():
        word = cur.next()
        if word == "family":
            rec["family"] = cur.next("a family")
            if rec["family"] not in ("inet", "inet6"):
                raise cur.error(rec["family"], "unknown family")
        elif word in HEADER_INT:
            rec[word] = cur.next_int(word)
        elif word in HEADER_FLAGS:
            rec[word] = True
        elif word == "initval":
            rec["initval"] = cur.next("a value")
        else:
            raise cur.error(word, "unknown ipset header keyword")


def _member(cur: TokenCursor, set_name: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"set": set_name, "elem": cur.next("a member")}
    while not cur.done():
        word = cur.next()
        if word in ("timeout", "packets", "bytes", "skbqueue"):
            rec[word] = cur.next_int(word)
        elif word in ("comment", "skbmark", "skbprio"):
            rec[word] = cur.next(word)
        elif word == "nomatch":
            rec["nomatch"] = True
        else:
            raise cur.error(word, "unknown ipset member option")
    return rec


def parse_ipset(text: str, source: str = "<text>") -> IpsetList:
    """Return the sets and members of ``ipset list`` text.

    ``Number of entries`` (when printed) must equal the members listed: a truncated list is a
    ParseError, not a shorter table.
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
        missing = [f for f in ("Name", "Type", "Header") if _KEYS[f] not in rec]
        if missing or not in_members:
            raise ParseError(source, last.number, last.text, f"set {rec.get('name')!r} is incomplete (no {missing or 'Members:'})")
        count = sum(1 for m in members if m["set"] == rec["name"])
        if "numentries" in rec and rec["numentries"] != count:
            raise ParseError(source, last.number, last.text, f"set {rec['name']!r} says {rec['numentries']} entries but lists {count}")

    last = Line(0, "")
    for line in lines_of(text):
        if not line.text.strip():
            last = line
            continue
        if in_members and not line.text.startswith("Name:"):
            cur = TokenCursor.of(line, source, quoted=True)
            members.append(_member(cur, sets[-1]["name"]))
            member_lines.append(line.number)
            last = line
            continue
        field, colon, value = line.text.partition(":")
        cur = TokenCursor(value.split(), source, line.number)
        if not colon or field not in FIELDS + ("Members",):
            raise cur.error(line.text, "unknown ipset list line")
        if field == "Name":
            finish(last)
            sets.append({"name": cur.next("a set name")})
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
        elif field == "Header":
            _header(cur, sets[-1])
        else:
            sets[-1][_KEYS[field]] = cur.next_int(field)
        if field != "Name":
            expected[field] = field
        if not cur.done():
            raise cur.unexpected()
        last = line
    finish(last)
    return IpsetList(
        frame_from_records(sets, SET_SCHEMA, set_lines),
        frame_from_records(members, MEMBER_SCHEMA, member_lines),
    )


_KEYS = {
    "Name": "name", "Type": "type", "Revision": "revision", "Header": "family",
    "Size in memory": "memsize", "References": "references", "Number of entries": "numentries",
}
