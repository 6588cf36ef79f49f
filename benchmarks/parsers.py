"""Benchmark: the lossless parsers on real outputs of 1k to 100k lines, against jc and json.loads.

Inputs are generated, loaded into a throwaway namespace with the real tools, and printed back
by them (text and, where iproute2 has it, ``-j`` JSON), so every parser reads the same real
output. Baselines: ``jc --ip-route`` (the well-known parser, which keeps less) on the same route
tables, and ``json.loads`` of iproute2's ``-j`` output (the floor: no parsing at all). Root.
"""

from __future__ import annotations

import gc
import json
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import jc

from ambientlab.core.parse import parse
from ambientlab.live.netns import NamespaceSet

SIZES = {"ip-route": (1_000, 10_000, 100_000), "ip-rule": (1_000, 10_000, 30_000),
         "ipset": (1_000, 10_000, 65_536), "iptables-save": (1_000, 5_000, 10_000, 20_000)}


def _net(rng: random.Random, i: int) -> str:
    return f"{10 + i // 65536 % 200}.{i // 256 % 256}.{i % 256}.0/24"


def _routes(ns: NamespaceSet, n: int, rng: random.Random) -> tuple[str, str]:
    lines = []
    for i in range(n):
        kind = rng.random()
        net = _net(rng, i)
        if kind < 0.5:
            lines.append(f"route add {net} via 192.0.2.{rng.randrange(2, 250)} dev d0 metric {rng.randrange(1000)}")
        elif kind < 0.8:
            lines.append(f"route add {net} dev d0 scope link src 192.0.2.1 proto static")
        else:
            lines.append(f"route add {rng.choice(['blackhole', 'unreachable', 'prohibit'])} {net}")
    ns.run("p", "ip", "-batch", "-", stdin="\n".join(lines) + "\n")
    return ns.run("p", "ip", "route", "show"), ns.run("p", "ip", "-j", "route", "show")


def _rules(ns: NamespaceSet, n: int, rng: random.Random) -> tuple[str, str]:
    lines = []
    for i in range(n):
        mark = rng.randrange(1, 0xFFF)
        action = rng.choice([f"lookup {rng.randrange(1, 250)}", "goto 32766", "blackhole", "unreachable"])
        match = rng.choice([f"fwmark {mark:#x}/0xfff", f"from {_net(rng, i)}", f"iif d0 fwmark {mark:#x}", "not fwmark 0x1"])
        lines.append(f"rule add priority {i + 1} {match} {action}")
    ns.run("p", "ip", "-batch", "-", stdin="\n".join(lines) + "\n")
    return ns.run("p", "ip", "rule"), ns.run("p", "ip", "-j", "rule")


def _ipset(ns: NamespaceSet, n: int, rng: random.Random) -> tuple[str, str]:
    lines = [f"create s hash:ip family inet hashsize 1024 maxelem {max(n, 65536)}"]
    lines += [f"add s 10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(n)]
    ns.run("p", "ipset", "restore", stdin="\n".join(lines) + "\n")
    return ns.run("p", "ipset", "list"), ""


def _iptables(ns: NamespaceSet, n: int, rng: random.Random) -> tuple[str, str]:
    lines = ["*mangle", ":PREROUTING ACCEPT [0:0]", ":chain-a - [0:0]"]
    for i in range(n):
        lines.append(rng.choice([
            f"-A chain-a -s {_net(rng, i)} -p tcp -m tcp --dport {rng.randrange(1, 65535)} -j MARK --set-xmark 0x100/0x100",
            f"-A chain-a -i d0 -m mark --mark {rng.randrange(1, 4095):#x}/0xfff -j RETURN",
            f"-A PREROUTING -m connmark --mark 0x210/0x210 -m comment --comment \"rule {i}\" -j MARK --set-xmark 0x40/0x40",
        ]))
    lines.append("COMMIT")
    ns.run("p", "iptables-restore", stdin="\n".join(lines) + "\n")
    return ns.run("p", "iptables-save"), ""


MAKERS: dict[str, Callable[[NamespaceSet, int, random.Random], tuple[str, str]]] = {
    "ip-route": _routes, "ip-rule": _rules, "ipset": _ipset, "iptables-save": _iptables}


def _best(func: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _peak_mib(func: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def measure(kinds: dict[str, tuple[int, ...]] = SIZES, repeat: int = 3) -> list[dict[str, Any]]:
    """Return one row per (kind, size, parser): lines, bytes, best-of-``repeat`` seconds, lines per
    second, peak traced memory in MiB (measured in a separate run)."""
    rows = []
    for kind, sizes in kinds.items():
        for size in sizes:
            rng = random.Random(size)
            with NamespaceSet() as ns:
                ns.add("p")
                ns.script("p", ["ip link add d0 type veth peer name d1", "ip addr add 192.0.2.1/24 dev d0",
                                "ip link set d0 up", "ip link set d1 up"])
                text, js = MAKERS[kind](ns, size, rng)
            lines = len(text.splitlines())
            parsers: dict[str, Callable[[], Any]] = {"ambientlab": lambda k=kind, t=text: parse(k, t)}
            if kind == "ip-route":
                parsers["jc"] = lambda t=text: jc.parse("ip_route", t, quiet=True)
            if js:
                parsers["json.loads (-j)"] = lambda j=js: json.loads(j)
            for name, func in parsers.items():
                seconds = _best(func, repeat)
                rows.append({"kind": kind, "size": size, "lines": lines, "bytes": len(js if "json" in name else text),
                             "parser": name, "seconds": seconds, "lines_per_s": lines / seconds,
                             "peak_mib": _peak_mib(func)})
    return rows
