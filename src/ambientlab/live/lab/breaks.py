"""``lab break PIECE`` and ``lab restore``: the tracer's pieces (:data:`ambientlab.core.trace.breaks.PIECES`)
removed from, and put back into, a running lab with the real tools."""

from __future__ import annotations

import shlex

from ambientlab.core.parse.ip_rule import parse_ip_rule_records
from ambientlab.core.parse.iptables import parse_iptables_save
from ambientlab.core.trace.breaks import PIECES
from ambientlab.live.lab.runtime import Lab, LabError

# the lab host of each machine the tracer knows
MACHINES = {"node": "node", "ztunnel": "ztunnel"}


def _iptables_commands(lab: Lab, host: str, table: str, chain: str, text: str) -> tuple[list[str], list[str]]:
    rules = parse_iptables_save(lab.run(host, "iptables-save", "-t", table), f"{lab.prefix}-{host}: iptables-save")
    rows = rules.rules[(rules.rules["table"] == table) & (rules.rules["chain"] == chain)]
    found = rows[rows["text"] == text]
    if len(found) != 1:
        raise LabError(f"{host}: no single rule {text!r} in {table} {chain} (already broken?)")
    position = int(found["rule"].iloc[0])
    spec = shlex.split(text)
    return (["iptables", "-t", table, "-D", chain, *spec], ["iptables", "-t", table, "-I", chain, str(position), *spec])


def _ip_rule_commands(lab: Lab, host: str, priority: str) -> tuple[list[str], list[str]]:
    text = lab.run(host, "ip", "rule")
    recs, lines = parse_ip_rule_records(text, f"{lab.prefix}-{host}: ip rule")
    mine = [line for rec, line in zip(recs, lines, strict=True) if str(rec["priority"]) == priority]
    if len(mine) != 1:
        raise LabError(f"{host}: no single ip rule {priority} (already broken?)")
    words = text.splitlines()[mine[0] - 1].split(None, 1)[1].split()
    return (["ip", "rule", "del", "priority", priority], ["ip", "rule", "add", "priority", priority, *words])


def _route_commands(lab: Lab, host: str, table: str, text: str) -> tuple[list[str], list[str]]:
    shown = [ln.rstrip() for ln in lab.run(host, "ip", "route", "show", "table", table).splitlines()]
    if shown.count(text) != 1:
        raise LabError(f"{host}: no single route {text!r} in table {table} (already broken?)")
    words = shlex.split(text)
    return (["ip", "route", "del", "table", table, *words], ["ip", "route", "add", "table", table, *words])


def break_piece(lab: Lab, name: str) -> str:
    """Remove piece ``name`` from the lab (remembering how to put it back); return its title."""
    if name not in PIECES:
        raise LabError(f"unknown piece {name!r}; known: {', '.join(PIECES)}")
    if any(b["piece"] == name for b in lab.state["breaks"]):
        raise LabError(f"{name} is already broken in lab {lab.prefix}")
    piece = PIECES[name]
    host = MACHINES[piece.machine]
    if piece.kind == "iptables":
        remove, restore = _iptables_commands(lab, host, *piece.where, piece.what)
    elif piece.kind == "ip-rule":
        remove, restore = _ip_rule_commands(lab, host, piece.what)
    elif piece.kind == "route":
        remove, restore = _route_commands(lab, host, piece.where[1], piece.what)
    else:
        old = lab.run(host, "sysctl", "-n", piece.what).strip()
        remove, restore = ["sysctl", "-qw", f"{piece.what}={piece.value}"], ["sysctl", "-qw", f"{piece.what}={old}"]
    lab.run(host, *remove)
    lab.state["breaks"].append({"piece": name, "host": host, "removed": remove, "restore": restore})
    lab.save()
    return piece.title


def restore(lab: Lab) -> list[str]:
    """Put back every broken piece, newest first; return their names."""
    done = []
    while lab.state["breaks"]:
        entry = lab.state["breaks"][-1]
        lab.run(entry["host"], *entry["restore"])
        lab.state["breaks"].pop()
        lab.save()
        done.append(entry["piece"])
    return done
