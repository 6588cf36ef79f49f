"""``route get`` queries in ``ip -batch`` syntax, answered by a :class:`Host` in bulk."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from ambientlab.core.errors import ParseError
from ambientlab.core.gcpause import collector_paused
from ambientlab.core.parse.common import address_family, check_name
from ambientlab.core.parse.lexer import TokenCursor
from ambientlab.core.trace.fib import PROTOCOLS
from ambientlab.core.trace.host import Host

JSON_KEYS = ("dst", "type", "dev", "gateway", "table", "prefsrc", "error")


@dataclass(frozen=True)
class Query:
    """One ``route get`` query."""

    dst: str
    src: str | None = None
    iif: str | None = None
    mark: int = 0
    proto: int = 0
    sport: int = 0
    dport: int = 0

    def line(self) -> str:
        """Return the query as an ``ip -batch`` line."""
        words = ["route", "get", self.dst]
        if self.src:
            words += ["from", self.src]
        if self.iif:
            words += ["iif", self.iif]
        if self.mark:
            words += ["mark", hex(self.mark)]
        if self.proto:
            words += ["ipproto", str(self.proto)]
        if self.sport:
            words += ["sport", str(self.sport)]
        if self.dport:
            words += ["dport", str(self.dport)]
        return " ".join(words)


def _words(text: str, source: str, line: int) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as err:  # "No closing quotation"
        raise ParseError(source, line, text.strip(), str(err)) from None


def parse_query(text: str, where: str = "<query>", line: int = 1) -> Query:
    """Return the Query of ``[route get] DST [from SRC] [iif DEV] [mark M] [ipproto P] [sport N] [dport N]``.

    Addresses must be IPv4 (what the tracer models), the mark a u32 (decimal or ``0x…``),
    ports u16 and the protocol a name or 0-255. Anything else raises
    :class:`~ambientlab.core.errors.ParseError` naming ``where``, ``line`` and the token.
    """
    words = _words(text, where, line)
    if words[:2] == ["route", "get"]:
        words = words[2:]
    if not words:
        raise ParseError(where, line, text.strip(), "no destination")
    cur = TokenCursor(words, where, line)
    if address_family(words[0]) != "inet":
        raise cur.error(words[0], "the destination is not an IPv4 address")
    fields: dict[str, Any] = {"dst": words[0]}
    rest = words[1:]
    if len(rest) % 2:
        raise cur.error(rest[-1], "needs a value")
    names = {"from": "src", "iif": "iif", "mark": "mark", "ipproto": "proto", "sport": "sport", "dport": "dport"}
    for key, value in zip(rest[::2], rest[1::2], strict=True):
        if key not in names or names[key] in fields:
            raise cur.error(key, "unexpected (unknown or repeated)")
        if key == "mark":
            fields["mark"] = cur.uint(value, "a mark", hexadecimal=value.startswith("0x"))
        elif key == "ipproto":
            fields["proto"] = PROTOCOLS[value] if value in PROTOCOLS else cur.uint(value, "a protocol", 8)
        elif key in ("sport", "dport"):
            fields[key] = cur.uint(value, "a port", 16)
        elif key == "from":
            if address_family(value) != "inet":
                raise cur.error(value, "the source is not an IPv4 address")
            fields["src"] = value
        else:
            fields["iif"] = check_name(cur, value, "device name")
    return Query(**fields)


def parse_batch(text: str, source: str = "<batch>") -> list[tuple[int, Query]]:
    """Return (line number, Query) for every query of an ``ip -batch`` style file, all checked
    before any is answered. As ``ip -batch`` does, ``#`` starts a comment and blank lines are
    skipped; lines are counted at ``\\n`` only. A bad line raises ParseError ``FILE:LINE``."""
    out: list[tuple[int, Query]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.split("#", 1)[0]  # iproute2's getcmdline cuts the line at the first "#"
        if not _words(raw, source, number):
            continue
        out.append((number, parse_query(raw, source, number)))
    return out


def answer(host: Host, query: Query, detail: bool = True) -> dict[str, Any]:
    """Return ``host``'s answer record to ``query`` (with ``detail``, the private ``_`` keys too)."""
    return host.route_get(query.dst, query.src, query.iif, query.mark,
                          proto=query.proto, sport=query.sport, dport=query.dport, detail=detail)


def public(record: dict[str, Any]) -> dict[str, Any]:
    """Return ``record`` without the tracer's private ``_`` keys (what ``ip -j route get`` has)."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """Return the short JSON form of an answer: :data:`JSON_KEYS` that are present."""
    out = {k: record[k] for k in JSON_KEYS if k in record}
    if "error" not in out:
        out.setdefault("type", "unicast")
    return out


def answer_all(host: Host, queries: list[Query]) -> list[dict[str, Any]]:
    """Return the public answer records of ``queries``, in order (the garbage collector paused:
    see :func:`~ambientlab.core.gcpause.collector_paused`)."""
    with collector_paused():
        return [answer(host, q, detail=False) for q in queries]
