"""Break one piece of the redirection and walk again: the "what is each piece for" table of
the live-lab notes, computed by the tracer."""

from __future__ import annotations

from dataclasses import dataclass

from ambientlab.core.parse.ip_route import render_route
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.fib import Fib
from ambientlab.core.trace.host import Sysctls
from ambientlab.core.trace.network import Network


def remove_iptables_rule(net: Network, machine: str, chain: tuple[str, str], text: str) -> None:
    """Delete the rule whose text is ``text`` from ``chain`` = (table, chain) of ``machine``."""
    rules = net.machines[machine].rules
    assert rules is not None
    entries = rules.chains[chain]
    kept = [e for e in entries if e[1]["text"] != text]
    if len(kept) != len(entries) - 1:
        raise KeyError(f"{machine}: no single rule {text!r} in {chain}")
    rules.chains[chain] = kept


def remove_ip_rule(net: Network, machine: str, priority: int) -> None:
    """Delete the policy routing rule with ``priority`` from ``machine``."""
    host = net.machines[machine].host
    kept = [r for r in host.fib.rules if r.priority != priority]
    if len(kept) != len(host.fib.rules) - 1:
        raise KeyError(f"{machine}: no single ip rule {priority}")
    host.fib = Fib(kept, host.fib.tables, unmerged=host.fib.unmerged)  # deleting a rule never merges again


def remove_route(net: Network, machine: str, table: str, text: str) -> None:
    """Delete the route printed as ``text`` from routing table ``table`` of ``machine``."""
    host = net.machines[machine].host
    number = ipv4.table_id(table)
    routes = [r for t in host.fib.tables.values() for r in t.routes]
    kept = [r for r in routes if not (r.table == number and render_route(r.record) == text)]
    if len(kept) != len(routes) - 1:
        raise KeyError(f"{machine}: no single route {text!r} in table {table}")
    host.fib = Fib.from_parts(host.fib.rules, kept, unmerged=host.fib.unmerged)


def set_sysctl(net: Network, machine: str, key: str, value: str) -> None:
    """Set ``net.ipv4.conf.DEV.KEY`` = ``value`` on ``machine`` (a fresh Sysctls, so no memo
    of the old value survives)."""
    host = net.machines[machine].host
    parts = key.split(".")
    if parts[:3] != ["net", "ipv4", "conf"] or len(parts) != 5:
        raise KeyError(f"{key}: only net.ipv4.conf.DEV.KEY can be changed")
    conf = {dev: dict(values) for dev, values in host.sysctls.conf.items()}
    conf.setdefault(parts[3], {})[parts[4]] = int(value)
    host.sysctls = Sysctls(conf)


@dataclass(frozen=True)
class Piece:
    """A piece that can be removed (or a sysctl changed) on one machine.

    ``kind`` is ``iptables`` (``where`` = (table, chain), ``what`` = the rule as iptables-save
    prints it), ``ip-rule`` (``what`` = the priority), ``route`` (``where`` = ("table", N),
    ``what`` = the route as ``ip route`` prints it) or ``sysctl`` (``what`` = key, ``value``).
    """

    title: str
    machine: str
    kind: str
    what: str
    where: tuple[str, str] = ("", "")
    value: str = ""

    def remove(self, net: Network) -> None:
        """Apply this break to the tracer's network ``net``."""
        if self.kind == "iptables":
            remove_iptables_rule(net, self.machine, self.where, self.what)
        elif self.kind == "ip-rule":
            remove_ip_rule(net, self.machine, int(self.what))
        elif self.kind == "route":
            remove_route(net, self.machine, self.where[1], self.what)
        else:
            set_sysctl(net, self.machine, self.what, self.value)


PIECES: dict[str, Piece] = {
    "node-connmark-to-0x40": Piece(
        "node: mangle rule `! -i veth6cc9a213 -m connmark --mark 0x210/0x210 -j MARK --set-xmark 0x40/0x40`",
        "node", "iptables", "! -i veth6cc9a213 -m connmark --mark 0x210/0x210 -j MARK --set-xmark 0x40/0x40",
        ("mangle", "ztunnel-PREROUTING")),
    "node-ip-rule-102": Piece("node: `ip rule` 102 (`fwmark 0x40/0x40 lookup 102`)", "node", "ip-rule", "102"),
    "node-mark-0x210": Piece(
        "node: mangle rule `! -s 10.244.2.10/32 -i veth6cc9a213 -j MARK --set-xmark 0x210/0x210`",
        "node", "iptables", "! -s 10.244.2.10/32 -i veth6cc9a213 -j MARK --set-xmark 0x210/0x210",
        ("mangle", "ztunnel-PREROUTING")),
    "node-table-101-ztunnel-route": Piece(
        "node: table 101's route `10.244.2.10 dev veth6cc9a213 scope link`", "node", "route",
        "10.244.2.10 dev veth6cc9a213 scope link", ("table", "101")),
    "node-rp-filter-strict": Piece("node: `net.ipv4.conf.all.rp_filter` set to 1 (strict reverse-path filter)",
                                   "node", "sysctl", "net.ipv4.conf.all.rp_filter", value="1"),
    "ztunnel-mark-0x4d3": Piece(
        "ztunnel: mangle rule `! -d 10.244.2.10/32 -i eth0 -p tcp -j MARK --set-xmark 0x4d3/0xfff`",
        "ztunnel", "iptables", "! -d 10.244.2.10/32 -i eth0 -p tcp -j MARK --set-xmark 0x4d3/0xfff",
        ("mangle", "PREROUTING")),
    "node-nat-accept-0x100": Piece(
        "node: nat rule `-m mark --mark 0x100/0x100 -j ACCEPT` (ztunnel-PREROUTING, before kube-proxy's KUBE-SERVICES)",
        "node", "iptables", "-m mark --mark 0x100/0x100 -j ACCEPT", ("nat", "ztunnel-PREROUTING")),
    "ztunnel-ip-rule-20000": Piece("ztunnel: `ip rule` 20000 (`fwmark 0x400/0xfff lookup 100`)",
                                   "ztunnel", "ip-rule", "20000"),
}
