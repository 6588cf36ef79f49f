"""Seeded random ``ip rule`` and ``ip route`` commands, for the kernel-checked tests."""

from __future__ import annotations

import random

from ambientlab.core.trace.batch import Query

DEVICES = {"v0": ("10.0.0.1", "10.0.0.0/24", "2001:db8:0:1::1"), "v1": ("10.0.1.1", "10.0.1.0/24", "2001:db8:0:2::1")}
SETUP = [
    "link add v0 type veth peer name p0", "link add v1 type veth peer name p1",
    "link set v0 up", "link set p0 up", "link set v1 up", "link set p1 up",
    "addr add 10.0.0.1/24 dev v0", "addr add 10.0.1.1/24 dev v1",
    "addr add 2001:db8:0:1::1/64 dev v0 nodad", "addr add 2001:db8:0:2::1/64 dev v1 nodad",
]


def _prefix(rng: random.Random, v6: bool = False) -> str:
    if v6:
        length = rng.choice([128, 64, 48, 56, 32])
        word = rng.randrange(1, 0xFFFF)
        return f"2001:db8:{word:x}::{rng.randrange(1, 99):x}/{length}"
    length = rng.choice([32, 32, 24, 16, 8, 30, 27, 12])
    addr = [rng.randrange(1, 224), rng.randrange(256), rng.randrange(256), rng.randrange(256)]
    mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
    value = ((addr[0] << 24) | (addr[1] << 16) | (addr[2] << 8) | addr[3]) & mask
    return ".".join(str((value >> s) & 255) for s in (24, 16, 8, 0)) + f"/{length}"


def rule_commands(rng: random.Random, count: int) -> list[str]:
    """Return ``count`` random ``rule add …`` commands (ip -batch syntax, IPv4 and IPv6)."""
    out = []
    priorities = rng.sample(range(1, 32000), count)
    for prio in priorities:
        v6 = rng.random() < 0.2
        words = ["-6" if v6 else "-4", "rule", "add", "priority", str(prio)]
        if rng.random() < 0.15:
            words.append("not")
        if rng.random() < 0.5:
            words += ["from", _prefix(rng, v6)]
        if rng.random() < 0.3:
            words += ["to", _prefix(rng, v6)]
        if rng.random() < 0.4:
            mark = rng.choice([0x100, 0x200, 0x40, 0x210, 0x4D3, rng.randrange(1, 1 << 16), 0])
            mask = rng.choice([None, mark or 0x100, 0xFFF, 0xFF00, 0xFFFFFFFF])  # iproute2 prints a zero mark as 0
            words += ["fwmark", hex(mark) + (f"/{hex(mask)}" if mask is not None else "")]
        if rng.random() < 0.2:
            words += ["iif", rng.choice(["v0", "v1", "lo", "nosuch0"])]
        if rng.random() < 0.1:
            words += ["oif", rng.choice(["v0", "v1", "gone1"])]
        if rng.random() < 0.1:
            words += ["ipproto", rng.choice(["tcp", "udp"]), "dport", rng.choice(["80", "1000-2000"])]
        if rng.random() < 0.05:
            words += ["sport", str(rng.randrange(1, 65535))]
        if rng.random() < 0.05:
            lo = rng.randrange(0, 5000)
            words += ["uidrange", f"{lo}-{lo + rng.randrange(1, 100)}"]
        if rng.random() < 0.05 and not v6:
            words += ["tos", rng.choice(["0x10", "0x08", "0x04"])]
        if rng.random() < 0.05:
            words += ["proto", rng.choice(["static", "boot", "kernel"])]
        action = rng.random()
        if action < 0.65:
            words += ["lookup", rng.choice(["main", "local", "default", str(rng.randrange(1, 3000))])]
            if rng.random() < 0.1:
                words += ["suppress_prefixlength", str(rng.randrange(0, 33))]
            if rng.random() < 0.05 and not v6:
                words += ["realms", rng.choice(["3", "3/4"])]
        elif action < 0.8:
            words += ["goto", str(rng.randrange(prio + 1, 32767))]
        else:
            words.append(rng.choice(["blackhole", "unreachable", "prohibit", "nop"]))
        out.append(" ".join(words))
    return out


def extra_route_commands(rng: random.Random, count: int) -> list[str]:
    """Return ``count`` IPv4 routes the tracer does not model but the parsers must read:
    nexthop objects (``nhid``), ``via inet6`` next hops, and metrics with units (rtt, rttvar,
    rto_min), ``congctl`` and ``features ecn``; the ``nexthop add`` commands come first."""
    out = ["-4 nexthop add id 10 via 10.0.0.2 dev v0", "-4 nexthop add id 11 via 10.0.1.3 dev v1",
           "-4 nexthop add id 12 group 10/11", "-6 nexthop add id 20 via 2001:db8:0:1::2 dev v0"]
    for _ in range(count):
        dst = _prefix(rng)
        table = rng.choice(["main", "7", "8"])
        roll = rng.random()
        if roll < 0.3:
            words = ["route", "add", dst, "table", table, "nhid", rng.choice(["10", "11", "12"])]
        elif roll < 0.45:
            words = ["route", "add", dst, "table", table, "via", "inet6", f"2001:db8:0:1::{rng.randrange(2, 99):x}", "dev", "v0"]
        else:
            words = ["route", "add", dst, "table", table, "via", f"10.0.0.{rng.randrange(2, 250)}", "dev", "v0"]
        if rng.random() < 0.5:
            words += ["rtt", rng.choice(["10ms", "250ms", "2s", "1.5s"])]
        if rng.random() < 0.3:
            words += ["rttvar", rng.choice(["5ms", "3s"])]
        if rng.random() < 0.3:
            words += ["rto_min", rng.choice(["200ms", "5ms"])]
        if rng.random() < 0.3:
            words += ["congctl"] + (["lock"] if rng.random() < 0.5 else []) + [rng.choice(["cubic", "reno"])]
        if rng.random() < 0.2:
            words += ["features", "ecn"]
        out.append("-4 " + " ".join(words))
    out.append("-6 route add 2001:db8:77::/64 nhid 20")
    return out


def route_commands(rng: random.Random, count: int, tables: tuple[str, ...] = ()) -> list[str]:
    """Return ``count`` random ``route add …`` commands (all route types, IPv4 and IPv6), in
    ``tables`` if given (else main and numbered tables)."""
    out = []
    for _ in range(count):
        v6 = rng.random() < 0.2
        table = rng.choice(tables or ("main", str(rng.randrange(1, 300)), str(rng.randrange(1, 300))))
        dev = rng.choice(list(DEVICES))
        kind = rng.choice(["unicast"] * 5 + ["local", "broadcast", "blackhole", "unreachable", "prohibit", "throw", "multicast"])
        dst = "default" if rng.random() < 0.05 else _prefix(rng, v6)
        words = ["-6" if v6 else "-4", "route", "add"]
        if kind == "multicast":
            dst = "ff0e::/16" if v6 else f"239.{rng.randrange(256)}.0.0/16"
        if kind == "broadcast" and v6:
            kind = "unicast"
        words += ([] if kind == "unicast" else [kind]) + [dst, "table", table]
        if kind in ("unicast", "local", "broadcast", "multicast"):
            choice = rng.random()
            if kind == "unicast" and choice < 0.4:
                base = DEVICES[dev][2 if v6 else 1]
                gw = f"{base.rsplit(':', 1)[0]}:{rng.randrange(2, 250):x}" if v6 else \
                    f"{DEVICES[dev][1].split('/')[0].rsplit('.', 1)[0]}.{rng.randrange(2, 250)}"
                words += ["via", gw, "dev", dev]
            elif kind == "unicast" and choice < 0.55 and not v6:
                words += ["via", f"192.0.2.{rng.randrange(1, 250)}", "dev", dev, "onlink"]
            else:
                words += ["dev", dev]
            if rng.random() < 0.3 and not v6:
                words += ["src", DEVICES[dev][0]]
            if rng.random() < 0.2 and kind == "unicast":
                words += ["scope", rng.choice(["link", "host", "global"])]
        if rng.random() < 0.4:
            words += ["metric", str(rng.randrange(0, 5000))]
        if rng.random() < 0.2:
            words += ["proto", rng.choice(["static", "kernel", "dhcp", "bird", "99"])]
        if rng.random() < 0.1 and kind == "unicast":
            words += ["mtu"] + (["lock"] if rng.random() < 0.3 else []) + [str(rng.randrange(1280, 9000))]
        if rng.random() < 0.05 and kind == "unicast" and not v6:
            words += ["realm", str(rng.randrange(1, 100))]
        if v6 and rng.random() < 0.2 and kind == "unicast":
            words += ["pref", rng.choice(["low", "medium", "high"])]
        out.append(" ".join(words))
    if count:
        out.append("-4 route add 10.77.0.0/16 table 7 nexthop via 10.0.0.2 dev v0 weight 1 nexthop via 10.0.1.3 dev v1 weight 4")
    return out


def random_queries(rng: random.Random, devices: list[str], addresses: list[str], count: int,
                   marks: list[int]) -> list[Query]:
    """Return ``count`` random route get queries: destinations from ``addresses`` or anywhere,
    forwarded (``from`` + ``iif``) or local output, marks from ``marks`` or random."""
    out = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.6:
            dst = rng.choice(addresses)
        else:
            dst = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        src = iif = None
        if rng.random() < 0.65:
            src = rng.choice(addresses) if rng.random() < 0.8 else f"{rng.randrange(1, 224)}.{rng.randrange(256)}.0.{rng.randrange(1, 255)}"
            if rng.random() < 0.85:
                iif = rng.choice(devices)
        mark = rng.choice(marks) if rng.random() < 0.8 else rng.randrange(1, 1 << 16)
        out.append(Query(dst, src, iif, mark))
    return out
