"""Figures drawn from the data: the node with its pods, veths, tunnels and ztunnel, and a
packet's path on that picture, taken from the tracer's hop table.

Both editions of the book (English, 中文) share every figure, so a label that is a sentence carries
both languages (:func:`bilingual`); names, addresses, devices and the words the Chinese posts keep in
English (node, pod, socket) stand alone. The fonts: :mod:`ambientlab.book.fonts`."""

from __future__ import annotations

import itertools
import re

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import FancyBboxPatch

from ambientlab.book.fonts import use_cjk_fallback
from ambientlab.core.capture import load_capture
from ambientlab.core.trace.demo import SECOND, WORLD
from ambientlab.core.trace.network import Exit, Network
from ambientlab.core.trace.walks import packet_hops

NODE_BOX = (3.2, 0.6, 3.6, 6.4)  # x, y, width, height
ZTUNNEL_BOX = (8.6, 2.2, 2.2, 3.4)
WORLD_BOX = (3.2, -1.6, 3.6, 0.9)
OTHER_NODE = ("kind-2022-ambient-worker", "cluster/kubectl-get-pods-ambient-worker.txt")  # the walks' other node
SOCKET_ROWS = {15001: "pistioout", 15006: "pistioin", 15008: "pistioin"}  # the device each listener is fed by
# The Chinese of the labels the figures draw that are words (the Chinese edition's terms), with
# the line breaks that fit the boxes they are drawn in.
WORDS_ZH = {
    WORLD: "集群的其余部分（eth0）",
    "in by a device": "从设备进入",
    "out by a device": "从设备离开",
    "a local process (its sockets)": "本机进程\n（它的套接字）",
    "routing decision: which device, which source?": "路由决策：\n走哪个设备，\n用哪个源地址？",
    "routing again, if OUTPUT changed mark or destination": "再次路由：\n若 OUTPUT 改了\n标记或目的地址",
    "routing decision: for this host, or forward?": "路由决策：\n交给本机，\n还是转发？",
}


use_cjk_fallback()  # figures made from here on


def bilingual(text: str, zh: str | None = None) -> str:
    """Return label ``text`` with its Chinese on the next line: ``zh``, or the book's own for a
    label of :data:`WORDS_ZH`; ``text`` alone when it has none."""
    zh = zh or WORDS_ZH.get(text)
    return f"{text}\n{zh}" if zh else text


def moved_pods(net: Network, node: str = "ambient-worker2") -> dict[str, str]:
    """Return {pod: node} for the pods of ``net`` (the node named ``node``) that the walks place on
    another node (read from that node's recorded pod list, e.g. reviews-v1 on ambient-worker): the
    node's recorded files still wire them here. Empty when ``node`` is that other node."""
    capture_name, path = OTHER_NODE
    try:
        listed = load_capture(capture_name).parse(path)
    except (FileNotFoundError, KeyError, ValueError):
        return {}
    there = {str(name).rsplit("-", 2)[0]: str(node) for name, node in zip(listed["NAME"], listed["NODE"], strict=True)}
    return {pod: there[pod] for pod in net.entries if pod in there and there[pod] != node and not pod.startswith(SECOND)}


def _box(ax: Axes, xywh: tuple[float, float, float, float], label: str, color: str) -> None:
    x, y, w, h = xywh
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="#444", lw=1))
    ax.text(x + w / 2, y + h - 0.25, label, ha="center", va="top", fontsize=10, weight="bold")


def layout(net: Network) -> dict[str, tuple[float, float]]:
    """Return anchor points: ``MACHINE/DEV`` for devices, ``pod:NAME``, ``world``, and
    ``MACHINE`` (the centre of a machine's box)."""
    points: dict[str, tuple[float, float]] = {}
    nx, ny, nw, nh = NODE_BOX
    zx, zy, zw, zh = ZTUNNEL_BOX
    points["node"] = (nx + nw / 2, ny + nh / 2 - 0.4)
    points["ztunnel"] = (zx + zw / 2, zy + zh / 2 - 0.3)
    points["world"] = (WORLD_BOX[0] + WORLD_BOX[2] / 2, WORLD_BOX[1] + WORLD_BOX[3] / 2)
    pods = sorted(name for name, end in net.entries.items() if isinstance(net.wires.get(end), Exit)
                  and net.wires[end].kind == "pod")  # type: ignore[union-attr]
    for i, name in enumerate(pods):
        y = ny + nh - 1.0 - i * (nh - 1.4) / max(len(pods) - 1, 1)
        machine, dev = net.entries[name]
        points[f"pod:{name}"] = (0.1, y)
        points[f"{machine}/{dev}"] = (nx, y)
    ztunnel_side = [end for end, peer in net.wires.items() if isinstance(peer, tuple)]
    node_tunnels = sorted(net.machines["node"].tunnels)
    zt_tunnels = sorted(net.machines["ztunnel"].tunnels)
    rows = [zy + zh - 0.9 - i * 0.8 for i in range(3)]
    for (machine, dev) in ztunnel_side:
        if machine == "node":
            points[f"node/{dev}"] = (nx + nw, rows[2])
        else:
            points[f"{machine}/{dev}"] = (zx, rows[2])
    for i, dev in enumerate(node_tunnels):
        points[f"node/{dev}"] = (nx + nw, rows[i])
    for i, dev in enumerate(zt_tunnels):
        points[f"ztunnel/{dev}"] = (zx, rows[i])
    points["node/eth0"] = (nx + nw / 2, ny)
    return points


def draw_node(net: Network, title: str = "", ax: Axes | None = None, node: str = "ambient-worker2") -> Axes:
    """Draw the node (named ``node``), its pods, the ztunnel pod, the veths and the tunnels;
    return the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 6.2))
    points = layout(net)
    _box(ax, NODE_BOX, f"node {node}", "#eef3fb")
    _box(ax, ZTUNNEL_BOX, "ztunnel pod", "#fdf1e3")
    _box(ax, WORLD_BOX, "", "#f0f0f0")
    ax.text(*points["world"], bilingual(WORLD), ha="center", va="center", fontsize=9)
    moved = moved_pods(net, node)
    for key, (x, y) in points.items():
        if key.startswith("pod:") and key[4:] in moved:  # recorded here, elsewhere in the walks: say so
            ax.add_patch(FancyBboxPatch((x - 1.35, y - 0.45), 2.7, 0.9, boxstyle="round,pad=0.03", fc="#f4f4f4",
                                        ec="#999", ls="--"))
            ax.text(x, y, f"{key[4:]} (recorded here;\nin the walks: {moved[key[4:]]})\n此处为实录；走查中\n在 {moved[key[4:]]}",
                    ha="center", va="center", fontsize=6, color="#555")
        elif key.startswith("pod:"):
            ax.add_patch(FancyBboxPatch((x - 0.9, y - 0.22), 1.8, 0.44, boxstyle="round,pad=0.03", fc="#e8f5e9", ec="#444"))
            ax.text(x, y, key[4:], ha="center", va="center", fontsize=8.5)
    for end, peer in net.wires.items():
        a = points.get(f"{end[0]}/{end[1]}")
        if a is None:
            continue
        if isinstance(peer, Exit) and peer.kind == "pod":
            b = points[f"pod:{peer.name}"]
            ax.plot([b[0] + 0.9, a[0]], [b[1], a[1]], color="#888", lw=1, zorder=1)
        elif isinstance(peer, tuple) and end[0] == "node":
            b = points[f"{peer[0]}/{peer[1]}"]
            ax.plot([a[0], b[0]], [a[1], b[1]], color="#888", lw=1.5, zorder=1)
    for dev, tunnel in net.machines["node"].tunnels.items():
        peer = next(d for d, t in net.machines["ztunnel"].tunnels.items() if t.vni == tunnel.vni)
        a, b = points[f"node/{dev}"], points[f"ztunnel/{peer}"]
        ax.plot([a[0], b[0]], [a[1], b[1]], color="#c77", lw=1.5, ls="--", zorder=1)
        ax.text((a[0] + b[0]) / 2, a[1] - 0.08, f"VNI {tunnel.vni}", ha="center", va="top", fontsize=7.5, color="#a55")
    ax.plot([points["node/eth0"][0]] * 2, [NODE_BOX[1], WORLD_BOX[1] + WORLD_BOX[3]], color="#888", lw=1.5, zorder=1)
    shared = {d for m, d in (k.split("/") for k in points if "/" in k) if m == "node"} & \
        {d for m, d in (k.split("/") for k in points if "/" in k) if m != "node"}
    for key, (x, y) in points.items():
        if "/" in key:
            machine, dev = key.split("/")
            ax.plot(x, y, "o", ms=5, color="#333", zorder=3)
            label = key if dev in shared else dev  # eth0 on both sides: say whose
            # each label sits above its wire, where no arrow comes from: inside ztunnel's box for its devices,
            # in the gap between the boxes for the node's tunnels and veth, on the wire to the pod for a pod's veth
            if machine == "node" and x <= NODE_BOX[0]:  # on the wire from the pod, outside the node's box
                ax.text(x - 0.08, y + 0.06, label, fontsize=6.5, ha="right", va="bottom", zorder=3)
            elif machine == "node" and y <= NODE_BOX[1]:
                ax.text(x + 0.1, y - 0.06, label, fontsize=7.5, ha="left", va="top", zorder=3)
            elif machine == "node":
                ax.text(x + 0.08, y + 0.06, label, fontsize=7.5, ha="left", va="bottom", zorder=3)
            else:
                ax.text(x + 0.1, y + 0.06, label, fontsize=7.5, ha="left", va="bottom", zorder=3)
    ax.set_xlim(-1.3, 11.2)
    ax.set_ylim(-1.9, 7.4)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)
    return ax


def path_trace(net: Network, hops: pd.DataFrame) -> list[tuple[str, str, object]]:
    """Return the anchor points (keys of :func:`layout`) a packet passes, in order: each with the
    kind of step that reaches it (``wire``, ``tunnel`` or ``deliver``) and the index label of the
    hop-table row that does."""
    out: list[tuple[str, str, object]] = []
    hop: object = None

    def add(key: str, kind: str) -> None:
        if not out or out[-1][0] != key:
            out.append((key, kind, hop))

    port, packet = "", None  # the port a TPROXY or REDIRECT rule handed the packet to
    for row in hops.itertuples():
        where, matched, host, hop = str(row.where), str(row.matched), str(row.host), row.Index
        if row.packet != packet:
            port, packet = "", row.packet
        found = re.search(r"-j (?:TPROXY --on-port|REDIRECT --to-ports) (\d+)", matched)
        if found:
            port = found.group(1)
        if row.hook == "wire":
            into = re.fullmatch(r"into (\w+)/(\S+)", where)
            if into:
                add("world" if host == WORLD else f"pod:{host}", "start")
                add(f"{into.group(1)}/{into.group(2)}", "wire")
            elif where.startswith("veth "):
                a, b = re.fullmatch(r"veth (\S+) -> (\S+)", where).groups()  # type: ignore[union-attr]
                add(f"{host}/{a}", "wire")
                add(b, "wire")
            elif where.startswith("tunnel "):
                add(f"{host}/{where.split()[1]}", "wire")
            elif matched.startswith("arrives in pod"):
                add(f"{host}/{where}", "wire")
                add(f"pod:{matched.removeprefix('arrives in pod ')}", "wire")
            elif matched.startswith("leaves for"):
                add(f"{host}/{where}", "wire")
                add("world", "wire")
        elif row.hook == "deliver" and where.startswith("tunnel "):
            add(f"{host}/{where.split()[1]}", "tunnel")
        elif row.hook == "deliver" and matched.startswith("socket ") and host == "ztunnel":
            named = re.search(r"\((\d+)", matched)
            add(f"socket:{host}:{port or (named.group(1) if named else str(row.headers).split(' > ')[1].split(' ')[0].rsplit(':', 1)[1])}",
                "deliver")
        elif row.hook == "deliver":
            add(host, "deliver")
    return out


def route_points(net: Network, hops: pd.DataFrame) -> list[tuple[str, str, object, tuple[float, float]]]:
    """Return the points of :func:`path_trace` where the drawn path meets them: (key, kind, hop
    label, (x, y)) in the coordinates of :func:`draw_node`. A socket sits in ztunnel's box, beside
    the device that feeds its listener; a pod's box is entered from its right edge, a socket's
    from its left."""
    points = layout(net)
    out = []
    for key, kind, hop in path_trace(net, hops):
        if key.startswith("socket:"):
            x, y = socket_box(points, key)
            out.append((key, kind, hop, (x - 0.55, y)))
        else:
            x, y = points[key]
            out.append((key, kind, hop, (x + 0.9, y) if key.startswith("pod:") else (x, y)))
    return out


def socket_box(points: dict[str, tuple[float, float]], key: str) -> tuple[float, float]:
    """Return the centre of the box drawn for socket ``key`` (``socket:MACHINE:PORT``) in
    ztunnel's box: on the row of the device that feeds its listener (:data:`SOCKET_ROWS`), or
    below eth0."""
    machine, port = key.removeprefix("socket:").split(":")
    feed = SOCKET_ROWS.get(int(port), "eth0") if port.isdigit() else "eth0"
    _, y = points.get(f"{machine}/{feed}", points[machine])
    y -= 0.45 if feed == "eth0" else 0  # below eth0's label
    zx, _, zw, _ = ZTUNNEL_BOX
    return (zx + zw - 0.65, y)


def draw_walk(net: Network, hops: pd.DataFrame, title: str = "", ax: Axes | None = None,
              packet: int | str | None = None, node: str = "ambient-worker2") -> Axes:
    """Draw the node (:func:`draw_node`) and the path of the packet(s) in ``hops`` (only packet
    ``packet``, by number or full label, if given): solid arrows on wires, dashed where the
    packet rides inside a tunnel. Return the axes."""
    if packet is not None:
        hops = packet_hops(hops, packet)
    ax = draw_node(net, title, ax, node)
    points = layout(net)
    route = route_points(net, hops)
    for key, kind, _, _ in route:  # a socket: drawn and labelled with its port
        if kind == "deliver" and key.startswith("socket:"):
            x, y = socket_box(points, key)
            ax.add_patch(FancyBboxPatch((x - 0.55, y - 0.16), 1.1, 0.32, boxstyle="round,pad=0.02", fc="#fff",
                                        ec="#1565c0", zorder=5))
            ax.text(x, y, f"socket {key.rsplit(':', 1)[1]}", ha="center", va="center", fontsize=6, zorder=6)

    for (a, _, _, (x0, y0)), (b, kind, _, (x1, y1)) in itertools.pairwise(route):
        style = "--" if kind == "tunnel" else "-"
        # two devices on the same side edge of a box (the node's tunnels and veth, ztunnel's): bow the
        # arrow to the left, clear of the dots and labels between them (into the node's box, or into
        # the gap beside ztunnel's)
        edge = "/" in a and "/" in b and a.split("/")[0] == b.split("/")[0] and abs(x0 - x1) < 1e-9 \
            and x0 in (NODE_BOX[0] + NODE_BOX[2], ZTUNNEL_BOX[0]) and abs(y0 - y1) > 0.9
        bend = f"arc3,rad={0.45 if y1 < y0 else -0.45}" if edge else "arc3,rad=0"
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=4,
                    arrowprops={"arrowstyle": "-|>", "color": "#1565c0", "lw": 2, "ls": style,
                                "shrinkA": 4, "shrinkB": 4, "connectionstyle": bend})
    return ax


def split_at_underlay(hops: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return a two-node walk's hops as two one-node walks: the first node's (the wire to the
    second node shown as leaving by eth0) and the second node's (names without :data:`SECOND`,
    entering by eth0 from the rest of the cluster), each drawable on its own node's network."""
    underlay = f"veth eth0 -> {SECOND}node/eth0"
    first = hops[~hops["host"].str.startswith(SECOND)].copy()
    crossing = first["where"] == underlay
    first.loc[crossing, "matched"] = f"leaves for {WORLD}"
    first.loc[crossing, "where"] = "eth0"
    second = hops[hops["host"].str.startswith(SECOND)].replace(SECOND, "", regex=True)
    if crossing.any():
        entry = pd.DataFrame([{**dict.fromkeys(hops.columns), "host": WORLD, "hook": "wire", "where": "into node/eth0",
                               "matched": "enters from the other node"}])
        second = pd.concat([entry, second], ignore_index=True)
    return first, second


def draw_cluster(nodes: pd.DataFrame, pods: pd.DataFrame, ztunnels: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Draw the cluster from ``kubectl get node`` / ``get pod`` tables: one box per node with its
    ztunnel and the listed app pods on it. Return the axes."""
    names = list(nodes["NAME"])
    if ax is None:
        _, ax = plt.subplots(figsize=(3.4 * len(names), 3.6))
    for i, node in enumerate(names):
        x = i * 3.4
        _box(ax, (x, 0, 3.0, 3.2), node, "#eef3fb")
        on_node = [(n, ip) for n, ip, where in zip(ztunnels["NAME"], ztunnels["IP"], ztunnels["NODE"], strict=True)
                   if where == node]
        on_node += [(n, ip) for n, ip, where in zip(pods["NAME"], pods["IP"], pods["NODE"], strict=True) if where == node]
        for j, (name, ip) in enumerate(on_node):
            y = 2.45 - j * 0.42
            color = "#fdf1e3" if name.startswith("ztunnel") else "#e8f5e9"
            ax.add_patch(FancyBboxPatch((x + 0.15, y - 0.16), 2.7, 0.32, boxstyle="round,pad=0.02", fc=color, ec="#666"))
            ax.text(x + 0.25, y, name.rsplit("-", 2)[0] if not name.startswith("ztunnel") else name, fontsize=8, va="center")
            ax.text(x + 2.78, y, ip, fontsize=8, va="center", ha="right", family="monospace")
    ax.set_xlim(-0.2, 3.4 * len(names))
    ax.set_ylim(-0.2, 3.4)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax
