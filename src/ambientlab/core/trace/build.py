"""Build :class:`~ambientlab.core.trace.host.Host` objects from command outputs or from a capture."""

from __future__ import annotations

import re
from typing import Any

from ambientlab.core.capture import Capture
from ambientlab.core.parse.ip_addr import parse_ip_addr_records
from ambientlab.core.parse.ip_route import parse_ip_route_records
from ambientlab.core.parse.ip_rule import parse_ip_rule_records
from ambientlab.core.parse.sysctl import parse_sysctl
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.fib import Fib, Route, Rule, route_from_record, rule_from_record
from ambientlab.core.trace.host import Address, Device, Host, Sysctls
from ambientlab.core.trace.ipv4 import SCOPES


def devices_from_addr_records(records: list[dict[str, Any]]) -> list[Device]:
    """Return the devices of ``ip addr`` records, with their IPv4 addresses in printed order."""
    devices = []
    for rec in records:
        addrs = [
            Address(ipv4.to_int(a["local"]), int(a["prefixlen"]), SCOPES.get(a.get("scope", "global"), 0),
                    bool(a.get("secondary")))
            for a in rec.get("addr_info", []) if a.get("family") == "inet"
        ]
        flags = rec.get("flags", [])
        devices.append(Device(rec["ifname"], int(rec["ifindex"]), up="UP" in flags,
                              loopback="LOOPBACK" in flags, addrs=addrs))
    return devices


def devices_from_local_routes(routes: list[Route]) -> list[Device]:
    """Return devices guessed from the ``local`` table when no ``ip addr`` is given: each local
    route is an address of its device; the prefix length comes from the device's kernel route."""
    devices: dict[str, Device] = {"lo": Device("lo", 1, loopback=True)}
    connected = {(r.nexthops[0].dev, r.prefsrc): r.length for r in routes
                 if r.record.get("protocol") == "kernel" and r.type == "unicast" and r.nexthops}
    for route in routes:
        if route.table == ipv4.TABLES["local"] and route.type == "local" and route.length == 32 and route.nexthops:
            dev = route.nexthops[0].dev
            device = devices.setdefault(dev, Device(dev, len(devices) + 1))
            length = 8 if ipv4.is_loopback(route.network) else connected.get((dev, route.network), 32)
            scope = SCOPES["host"] if ipv4.is_loopback(route.network) else 0
            device.addrs.append(Address(route.network, length, scope))
    return list(devices.values())


def host_from_texts(name: str, rules: str, routes: str | list[tuple[str, str, str | None]],
                    addrs: str | None = None, sysctl: str | None = None, *, forwarding: bool | None = None,
                    rules_source: str | None = None) -> Host:
    """Return a Host from the text of ``ip rule``, ``ip route show table all`` (or a list of
    (text, source, table) for one file per table), ``ip addr`` and ``sysctl`` output.

    ``forwarding`` overrides ``net.ipv4.ip_forward`` (default: the sysctl text, else on);
    ``rules_source`` names the rules' file in errors and hop tables.
    """
    source = rules_source or f"{name}: ip rule"
    rule_recs, rule_lines = parse_ip_rule_records(rules, source)
    built_rules: list[Rule] = [rule_from_record(r, n, source) for r, n in zip(rule_recs, rule_lines, strict=True)]
    parts = [(routes, f"{name}: ip route", None)] if isinstance(routes, str) else routes
    built_routes: list[Route] = []
    for text, source, table in parts:
        recs, lines = parse_ip_route_records(text, source)
        built_routes += [route_from_record(r, n, source, table) for r, n in zip(recs, lines, strict=True)]
    devices = (devices_from_addr_records(parse_ip_addr_records(addrs, f"{name}: ip addr")[0]) if addrs
               else devices_from_local_routes(built_routes))
    pairs = {}
    if sysctl:
        frame = parse_sysctl(sysctl, f"{name}: sysctl")
        pairs = dict(zip(frame["key"], frame["value"], strict=True))
    if forwarding is not None:
        pairs["net.ipv4.ip_forward"] = "1" if forwarding else "0"
        pairs = {k: v for k, v in pairs.items() if not k.endswith(".forwarding")}
    pairs.setdefault("net.ipv4.ip_forward", "1")
    return Host(name, devices, Fib.from_parts(built_rules, built_routes), Sysctls.from_pairs(pairs))


def host_from_capture(capture: Capture, host: str) -> Host:
    """Return the Host of folder ``host`` (``node``, ``ztunnel``) of a capture: its ``ip rule``,
    every ``ip route show table N`` file, ``ip addr`` and ``sysctl`` output."""
    files = list(capture.files.index)
    tables = []
    for path in files:
        found = re.fullmatch(rf"{re.escape(host)}/ip-route-table-[^/]+\.txt", path)
        if found:
            table = re.search(r"\btable (\S+)$", capture.entry(path)["command"])
            if not table:
                raise ValueError(f"{capture.name}/{path}: command names no table")
            tables.append((capture.text(path), f"{capture.name}/{path}", table.group(1)))

    def text(name: str) -> str | None:
        path = f"{host}/{name}"
        return capture.text(path) if path in files else None

    rules = text("ip-rule.txt")
    if rules is None or not tables:
        raise ValueError(f"{capture.name}: {host}/ has no ip-rule.txt or no ip-route-table-*.txt")
    return host_from_texts(host, rules, tables, text("ip-addr.txt"), text("sysctl-net-ipv4.txt"),
                           rules_source=f"{capture.name}/{host}/ip-rule.txt")
