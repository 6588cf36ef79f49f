"""The netfilter hooks and the routing decisions, in the order the tracer passes them.

Nothing here states that order: :func:`hook_paths` *asks* the tracer. It builds a one-host
network whose rule set has a ``LOG`` rule (which matches every packet and decides nothing) in every
chain of every table of :data:`~ambientlab.core.trace.netfilter.HOOK_TABLES`, sends three packets
through it (one forwarded, one for a local socket, one sent by a local socket) and reads their hop
tables: each hook appears with the tables that ran there, each routing decision where the tracer
made it. :func:`draw_hooks` draws the graph those three paths make.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pandas as pd

from ambientlab.core.trace import host_from_texts, ipv4
from ambientlab.core.trace.netfilter import HOOK_TABLES, Packet, Ruleset
from ambientlab.core.trace.network import Exit, Machine, Network, Socket

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# The probe host: one address on each of two devices (read from its local table), the three
# default ip rules.
_RULES = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
_ROUTES = ("10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1\n"
           "10.0.1.0/24 dev eth1 proto kernel scope link src 10.0.1.1\n"
           "local 10.0.0.1 dev eth0 table local proto kernel scope host src 10.0.0.1\n"
           "local 10.0.1.1 dev eth1 table local proto kernel scope host src 10.0.1.1\n")
PROBE_MARK = 0x1  # set in mangle OUTPUT on the probe host, so that the tracer routes the packet again

PATHS = {
    "forwarded": "a packet the host forwards (in on one device, out on another)",
    "to a local socket": "a packet for the host itself",
    "sent by a local socket": "a packet a program on the host sends",
}
ENTER, LEAVE = "in by a device", "out by a device"
LOCAL = "a local process (its sockets)"  # where the second packet ends and the third starts


def probe_ruleset() -> str:
    """Return the probe's ``iptables-save`` text: a ``LOG`` rule in every chain of every table
    that :data:`HOOK_TABLES` names, and in mangle ``OUTPUT`` a ``MARK`` rule that sets
    :data:`PROBE_MARK` (so that the re-routing after ``OUTPUT`` shows)."""
    tables: dict[str, list[str]] = {}
    for hook, names in HOOK_TABLES.items():
        for table in names:
            tables.setdefault(table, []).append(hook)
    out = []
    for table, hooks in tables.items():
        out.append(f"*{table}")
        out += [f":{hook} ACCEPT [0:0]" for hook in hooks]
        for hook in hooks:
            out.append(f'-A {hook} -j LOG --log-prefix "{table} {hook} "')
            if (table, hook) == ("mangle", "OUTPUT"):
                out.append(f"-A {hook} -j MARK --set-xmark {PROBE_MARK:#x}/{PROBE_MARK:#x}")
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _probe_network() -> Network:
    host = host_from_texts("probe", _RULES, _ROUTES)  # devices from the local table
    machine = Machine(host, Ruleset(probe_ruleset(), "probe"))
    machine.sockets.append(Socket("a listener on port 80", (0, 80)))
    net = Network()
    net.add(machine)
    net.exit(("probe", "eth0"), Exit("world", "left"))
    net.exit(("probe", "eth1"), Exit("world", "right"))
    return net


def _hops(kind: str) -> list[dict[str, Any]]:
    net = _probe_network()
    ip = ipv4.to_int
    if kind == "forwarded":
        return net.send(kind, Packet(ip("10.0.0.2"), ip("10.0.1.2"), 6, 40000, 80, "S"), origin="left")
    if kind == "to a local socket":
        return net.send(kind, Packet(ip("10.0.0.2"), ip("10.0.0.1"), 6, 40000, 80, "S"), origin="left")
    return net.send(kind, Packet(0, ip("10.0.0.2"), 6, 40000, 80, "S"), origin="probe")


def _routing_label(previous: str | None) -> str:
    if previous is None:
        return "routing decision: which device, which source?"
    if previous == "OUTPUT":
        return "routing again, if OUTPUT changed mark or destination"
    return "routing decision: for this host, or forward?"


def hook_paths() -> pd.DataFrame:
    """Return the stages of the three probe packets (:data:`PATHS`), as the tracer passed them.

    One row per stage, indexed by (``packet``, ``step``): ``stage`` is a hook (``PREROUTING``…),
    a routing decision, or where the packet starts and ends; ``tables`` lists the tables that ran
    at a hook, in the order they ran (``raw > mangle > nat``).
    """
    rows: list[dict[str, Any]] = []
    for kind in PATHS:
        stages: list[tuple[str, list[str]]] = []
        hops = _hops(kind)
        for hop in hops:
            hook = hop["hook"]
            if hook == "wire" and hop["matched"].startswith("sent by"):
                stage = ENTER
            elif hook == "wire":
                stage = LEAVE
            elif hook == "deliver":
                stage = LOCAL
            elif hook == "routing":
                if stages and stages[-1][0].startswith("routing"):
                    continue  # the ip rule and the table of one decision
                stage = _routing_label(stages[-1][0] if stages else None)
            else:
                table = hop["where"].split(" ", 1)[0]
                if stages and stages[-1][0] == hook:
                    if table not in stages[-1][1]:
                        stages[-1][1].append(table)
                    continue
                stages.append((hook, [table]))
                continue
            stages.append((stage, []))
        if kind == "sent by a local socket":
            stages.insert(0, (LOCAL, []))
        rows += [{"packet": kind, "step": i + 1, "stage": stage, "tables": " > ".join(tables)}
                 for i, (stage, tables) in enumerate(stages)]
    return pd.DataFrame(rows).set_index(["packet", "step"])


def _graph(paths: pd.DataFrame) -> tuple[list[list[str]], list[tuple[str, str]], dict[str, str]]:
    routes: list[list[str]] = []
    edges: list[tuple[str, str]] = []
    tables: dict[str, str] = {}
    for kind in PATHS:
        stages = list(paths.loc[kind, "stage"])
        routes.append(stages)
        for stage, table in zip(stages, paths.loc[kind, "tables"], strict=True):
            if table:
                tables[stage] = table
        edges += [(a, b) for a, b in itertools.pairwise(stages) if (a, b) not in edges]
    return routes, edges, tables


def _between(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
    """Return the grid cells strictly between ``a`` and ``b`` on a path that goes along ``a``'s
    row first, then along ``b``'s column."""
    (xa, ya), (xb, yb) = a, b
    step_x, step_y = (1 if xb > xa else -1), (1 if yb > ya else -1)
    cells = [(x, ya) for x in range(xa + step_x, xb + step_x, step_x)] if xa != xb else []
    cells += [(xb, y) for y in range(ya + step_y, yb + step_y, step_y)] if ya != yb else []
    return cells[:-1] if cells else cells


def layout(routes: list[list[str]]) -> dict[str, tuple[int, int]]:
    """Return a grid cell (column, row) for every stage of ``routes`` (lists of stages): the
    first route along row 0; each later route's new stages between the stages already placed
    that it leaves from and returns to (along a row, then up a column), or, when it does not
    return, in a column below the stage it left from. Raise ValueError if two stages would share
    a cell."""
    pos: dict[str, tuple[int, int]] = {stage: (i, 0) for i, stage in enumerate(routes[0])}
    for route in routes[1:]:
        i = 0
        while i < len(route):
            if route[i] in pos:
                i += 1
                continue
            j = i
            while j < len(route) and route[j] not in pos:
                j += 1
            new = route[i:j]
            if i == 0:
                raise ValueError(f"route {route} starts with a stage that no earlier route placed")
            ax, ay = pos[route[i - 1]]
            cells = _between((ax, ay), pos[route[j]]) if j < len(route) else []
            if len(cells) != len(new):
                cells = [(ax, ay - k) for k in range(1, len(new) + 1)]
            for stage, cell in zip(new, cells, strict=True):
                if cell in pos.values():
                    raise ValueError(f"stages {stage!r} and another would share cell {cell}")
                pos[stage] = cell
            i = j
    return pos


def draw_hooks(ax: Axes | None = None) -> Axes:
    """Draw the netfilter hooks and routing decisions as the tracer passes them (from
    :func:`hook_paths`): hooks as blue boxes with their tables in order, routing decisions as
    yellow boxes, and one arrow for each step of the three probe packets. Return the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from ambientlab.book.figures import WORDS_ZH  # (figures sets the CJK font: book.fonts)

    paths = hook_paths()
    routes, edges, tables = _graph(paths)
    pos = layout(routes)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 5.6))
    sx, sy = 1.8, 1.75  # spacing of the grid
    w, h = 1.5, 1.5
    for name, (x, y) in pos.items():
        cx, cy = x * sx, y * sy
        color = "#dbe8f6" if name in HOOK_TABLES else "#fbeec1" if name.startswith("routing") else "#eeeeee"
        ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0.04", fc=color, ec="#444", lw=1))
        if name in HOOK_TABLES:  # the hook, then its tables in the order they run
            ax.text(cx, cy + h / 2 - 0.12, name, ha="center", va="top", fontsize=9, weight="bold")
            ax.text(cx, cy - 0.12, "\n".join(tables.get(name, "").split(" > ")), ha="center", va="center", fontsize=9)
        else:  # a word label: English, wrapped, and its Chinese below
            lines = _wrap(name, 16) + (WORDS_ZH[name].split("\n") if name in WORDS_ZH else [])
            ax.text(cx, cy, "\n".join(lines), ha="center", va="center", fontsize=7.5)
    for a, b in edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        if ya == yb:  # along a row: side to side
            side = w / 2 if xb > xa else -w / 2
            start, end = (xa * sx + side, ya * sy), (xb * sx - side, yb * sy)
        else:  # along a column (or across): top to bottom, or bottom to top
            side = h / 2 if ya > yb else -h / 2
            start, end = (xa * sx, ya * sy - side), (xb * sx, yb * sy + side)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, lw=1.3, color="#333"))
    xs = [p[0] * sx for p in pos.values()]
    ys = [p[1] * sy for p in pos.values()]
    ax.set_xlim(min(xs) - w / 2 - 0.1, max(xs) + w / 2 + 0.1)
    ax.set_ylim(min(ys) - h / 2 - 0.1, max(ys) + h / 2 + 0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Netfilter hooks (blue, tables in the order they run) and routing decisions (yellow),\n"
                 "as the tracer passes them: forwarded along the top row, for the host down, sent by the host up\n"
                 "netfilter 钩子（蓝色，表按运行顺序列出）与路由决策（黄色），即追踪器经过它们的顺序：\n"
                 "转发的数据包走最上面一行，交给本机的向下，本机发出的向上", fontsize=10)
    return ax


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines
