"""Lossless parsers for the command outputs of the book.

Each parser returns a pandas DataFrame (or, for outputs with two levels, an object holding
DataFrames) and raises :class:`~ambientlab.core.errors.ParseError` naming file, line and token
for anything it cannot represent. :func:`parse` dispatches on the kind names that the CLI
and the capture manifests use; :func:`to_records` gives the JSON records of any result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ambientlab.core.gcpause import collector_paused
from ambientlab.core.parse import ip_addr, ip_route, ip_rule, logs, nft_trace, sysctl
from ambientlab.core.parse.ip_addr import addresses, parse_ip_addr, parse_ip_link
from ambientlab.core.parse.ip_route import parse_ip_route, parse_route_get, render_route
from ambientlab.core.parse.ip_rule import parse_ip_rule, render_rule
from ambientlab.core.parse.ipset import IpsetList, parse_ipset
from ambientlab.core.parse.iptables import IptablesSave, parse_iptables_save, render_iptables_save
from ambientlab.core.parse.kubectl import custom_columns, parse_kubectl
from ambientlab.core.parse.logs import parse_cni_log
from ambientlab.core.parse.nft_trace import parse_jsonl, parse_nft_trace
from ambientlab.core.parse.sysctl import parse_sysctl
from ambientlab.core.tables import Column, records_from_frame

Parsed = pd.DataFrame | IpsetList | IptablesSave


@dataclass(frozen=True)
class Kind:
    """A kind of command output: its parser, its schema and the options it accepts."""

    name: str
    parser: Callable[..., Parsed]
    schema: tuple[Column, ...] | None
    options: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("ip-rule", parse_ip_rule, ip_rule.SCHEMA),
        Kind("ip-route", parse_ip_route, ip_route.SCHEMA),
        Kind("route-get", parse_route_get, ip_route.SCHEMA),
        Kind("ipset", parse_ipset, None),
        Kind("iptables-save", parse_iptables_save, None, ("excerpt",)),
        Kind("ip-addr", parse_ip_addr, ip_addr.SCHEMA, ("excerpt",)),
        Kind("ip-link", parse_ip_link, ip_addr.SCHEMA, ("excerpt",)),
        Kind("kubectl", parse_kubectl, None, ("columns",)),
        Kind("cni-log", parse_cni_log, logs.SCHEMA),
        Kind("sysctl", parse_sysctl, sysctl.SCHEMA),
        Kind("nft-trace", parse_nft_trace, nft_trace.SCHEMA),
        Kind("jsonl", parse_jsonl, None),
    )
}


def parse(kind: str, text: str, source: str = "<text>", **options: Any) -> Parsed:
    """Return the parsed ``text`` of command output ``kind`` (a key of :data:`KINDS`).

    Every kind takes ``cut=True`` (the text may end without a newline: a pasted excerpt);
    otherwise a last line without a newline is a ParseError. What an empty text means is
    decided per kind: see :data:`EMPTY`.
    """
    if kind not in KINDS:
        raise KeyError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    spec = KINDS[kind]
    unknown = set(options) - set(spec.options) - {"cut"}
    if unknown:
        raise TypeError(f"{kind} takes no option(s) {sorted(unknown)}")
    with collector_paused():
        return spec.parser(text, source, **options)



# What an empty file means, per kind (each parser's docstring says why).
EMPTY: dict[str, str] = {
    "ip-rule": "error: every namespace has rules, so an empty file is a failed command",
    "ip-route": "no routes: `ip route show table N` prints nothing for an empty table",
    "route-get": "error: every query prints an answer or an error",
    "ipset": "no sets: `ipset list` prints nothing when there are none",
    "iptables-save": "no tables: iptables-save prints nothing when no table is loaded",
    "ip-addr": "error (every namespace has lo); with excerpt, no interfaces (grep found nothing)",
    "ip-link": "error (every namespace has lo); with excerpt, no interfaces (grep found nothing)",
    "kubectl": "no rows: kubectl prints nothing on stdout when there are no resources",
    "cni-log": "no lines: nothing was logged",
    "sysctl": "error: sysctl always prints the keys asked for",
    "nft-trace": "no events: no packet was traced",
    "jsonl": "no records",
}


def to_records(kind: str, result: Parsed) -> list[dict[str, Any]]:
    """Return the JSON records of a :func:`parse` result (iproute2 ``-j`` keys where they exist;
    an ``ip rule`` ``nop`` action is the key ``nop``, as ``ip -j rule`` prints it)."""
    if isinstance(result, IpsetList | IptablesSave):
        return result.records()
    schema = KINDS[kind].schema or tuple(Column(str(c), "string", "") for c in result.columns)
    records = records_from_frame(result, schema)
    if kind == "ip-rule":
        return [ip_rule.json_record(rec) for rec in records]
    return records


__all__ = [
    "EMPTY", "KINDS", "IpsetList", "IptablesSave", "Kind", "Parsed", "addresses", "custom_columns", "parse",
    "parse_cni_log", "parse_ip_addr", "parse_ip_link", "parse_ip_route", "parse_ip_rule", "parse_ipset",
    "parse_iptables_save", "parse_jsonl", "parse_kubectl", "parse_nft_trace", "parse_route_get", "parse_sysctl", "render_iptables_save",
    "render_route", "render_rule", "to_records",
]
