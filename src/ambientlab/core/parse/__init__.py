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
    """Return the parsed ``text`` of command output ``kind`` (a key of :data:`KINDS`)."""
    if kind not in KINDS:
        raise KeyError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    spec = KINDS[kind]
    unknown = set(options) - set(spec.options)
    if unknown:
        raise TypeError(f"{kind} takes no option(s) {sorted(unknown)}")
    return spec.parser(text, source, **options)


def to_records(kind: str, result: Parsed) -> list[dict[str, Any]]:
    """Return the JSON records of a :func:`parse` result (iproute2 ``-j`` keys where they exist)."""
    if isinstance(result, IpsetList | IptablesSave):
        return result.records()
    schema = KINDS[kind].schema or tuple(Column(str(c), "string", "") for c in result.columns)
    return records_from_frame(result, schema)


__all__ = [
    "KINDS", "IpsetList", "IptablesSave", "Kind", "Parsed", "addresses", "custom_columns", "parse",
    "parse_cni_log", "parse_ip_addr", "parse_ip_link", "parse_ip_route", "parse_ip_rule", "parse_ipset",
    "parse_iptables_save", "parse_jsonl", "parse_kubectl", "parse_nft_trace", "parse_route_get", "parse_sysctl", "render_iptables_save",
    "render_route", "render_rule", "to_records",
]
