"""``route get`` queries in ``ip -batch`` syntax, answered by a :class:`Host` in bulk."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

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


def parse_query(text: str, where: str = "<query>") -> Query:
    """Return the Query of ``[route get] DST [from SRC] [iif DEV] [mark M] [ipproto P] [sport N] [dport N]``.

    Raise ValueError naming ``where`` and the token for anything else.
    """
    words = shlex.split(text)
    if words[:2] == ["route", "get"]:
        words = words[2:]
    if not words:
        raise ValueError(f"{where}: no destination")
    fields: dict[str, Any] = {"dst": words[0]}
    rest = words[1:]
    if len(rest) % 2:
        raise ValueError(f"{where}: {rest[-1]!r} needs a value")
    names = {"from": "src", "iif": "iif", "mark": "mark", "ipproto": "proto", "sport": "sport", "dport": "dport"}
    for key, value in zip(rest[::2], rest[1::2], strict=True):
        if key not in names or names[key] in fields:
            raise ValueError(f"{where}: unexpected {key!r}")
        try:
            if key == "mark":
                fields["mark"] = int(value, 0)
            elif key == "ipproto":
                fields["proto"] = PROTOCOLS[value] if value in PROTOCOLS else int(value)
            elif key in ("sport", "dport"):
                fields[key] = int(value)
            else:
                fields[names[key]] = value
        except ValueError:
            raise ValueError(f"{where}: bad value {value!r} for {key!r}") from None
    return Query(**fields)


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
    """Return the public answer records of ``queries``, in order."""
    return [answer(host, q, detail=False) for q in queries]
