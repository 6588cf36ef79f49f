"""A packet's steps, played one at a time over its figure: the step-through of the published book,
and :func:`story`, which shows it above the packet's numbered steps and its folded hop table.

:func:`frames` pairs each numbered step of one packet (:func:`ambientlab.book.story.steps`) with
the place on a figure where the packet is at that step: on the node figure
(:func:`ambientlab.book.figures.draw_walk`) when the packet stays on one node of a 2022 capture,
otherwise on the packet's own sequence diagram (:func:`ambientlab.book.story.draw_connection`).
:func:`player_html` draws that figure once, as SVG, and writes it with the frames and a few lines
of JavaScript: a self-contained block of HTML that needs no CDN, no kernel and no server (it
works from ``file://``). Its id is a hash of what it shows, so executing a notebook twice writes
the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ambientlab.book.display import hops as hop_view
from ambientlab.book.story import Step, connection_rows, draw_connection, lanes, legs, steps
from ambientlab.core.capture import Capture, load_capture
from ambientlab.core.trace.demo import SECOND
from ambientlab.core.trace.walks import packet_hops

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ambientlab.core.trace.network import Network


@dataclass(frozen=True)
class Frame:
    """One frame of a step-through: the step's number and line (:meth:`Step.text`), its caption
    as HTML, and where the packet is, as fractions of the figure's width and height from its top
    left corner."""

    number: int
    text: str
    caption: str
    x: float
    y: float
    lost: bool = False  # the packet's last step, where it is dropped or finds no route


def _capture_of(rows: pd.DataFrame) -> Capture | None:
    name = rows.attrs.get("capture")
    if not name:
        return None
    try:
        return load_capture(str(name))
    except (FileNotFoundError, KeyError, ValueError):
        return None


def _on_node_figure(rows: pd.DataFrame, capture: Capture | None) -> bool:
    """Return True if the packet can be shown on the node figure: ``capture`` (the walk's, read
    by :func:`_capture_of`) is a 2022 node-level capture, and every host the packet crosses is on
    the node that capture recorded."""
    from ambientlab.core.trace.walks import NODE_LEVEL, unfit_for

    if capture is None or unfit_for(capture, NODE_LEVEL) is not None:
        return False
    return not any(str(host).startswith(SECOND) for host in rows["host"])


@lru_cache(maxsize=16)
def _figure_network(capture: Path, walk: str, hashes: tuple[str, ...]) -> Network:
    """Return the network a node figure is drawn on: walk ``walk``'s own (kube-proxy's pods
    included), or the node of the capture at folder ``capture``. Built once per process for each
    capture and walk, and again when the capture's files (their manifest's sha256s, ``hashes``)
    change; only read by the figures, never walked."""
    from ambientlab.core.trace.demo import demo_network
    from ambientlab.core.trace.walks import WALKS

    opened = load_capture(capture)
    return WALKS[walk].network(opened) if walk in WALKS else demo_network(opened)


def _places(order: list[object], points: list[tuple[object, tuple[float, float]]], items: list[Step],
            start: tuple[float, float]) -> list[tuple[float, float]]:
    """Return, for each step, the last point the packet has reached by the step's last hop
    (``points``: (hop label, (x, y)) in the order the packet meets them; ``order``: the hop
    labels in table order); ``start`` before the first point."""
    rank = {hop: k for k, hop in enumerate(order)}
    out = []
    for step in items:
        reached = max((rank[h] for h in step.hops), default=-1)
        here = start
        for hop, xy in points:
            if rank.get(hop, len(order)) <= reached:
                here = xy
        out.append(here)
    return out


def _node_route(rows: pd.DataFrame) -> tuple[Network, list[tuple[str, str, object, tuple[float, float]]]] | None:
    """Return the network the packet was walked on (the walk's own, kube-proxy's pods included,
    or the capture's node) and the packet's points on its node figure; None if the packet cannot
    be drawn there (another design, another node, a place the figure does not show)."""
    from ambientlab.book import figures

    capture = _capture_of(rows)
    if capture is None or not _on_node_figure(rows, capture):
        return None
    hashes = tuple(str(f.get("sha256")) for f in capture.manifest["files"])
    net = _figure_network(capture.root, str(rows.attrs.get("walk", "")), hashes)
    try:
        return net, figures.route_points(net, rows)
    except KeyError:
        return None


def _draw(rows: pd.DataFrame, items: list[Step], columns: list[str] | None) -> tuple[Figure, Axes, list[tuple[float, float]], str]:
    """Draw the packet's figure; return it, its axes, each step's point in data coordinates, and
    the figure's kind (``node`` or ``lanes``)."""
    import matplotlib.pyplot as plt

    from ambientlab.book import figures

    order = list(rows.index)
    found = _node_route(rows)
    if found is not None:
        net, route = found
        fig, ax = plt.subplots(figsize=(10, 6.2))
        figures.draw_walk(net, rows, "", ax)
        points = [(hop, xy) for _, _, hop, xy in route]
        places = figures.layout(net)  # a host's socket sends: the packet starts in the host's box
        start = places.get(str(rows["host"].iloc[0])) or (route[0][3] if route else places["node"])
        kind = "node"
    else:
        names, lanes = connection_rows(rows, columns)
        fig, ax = plt.subplots(figsize=(max(8.0, 2.0 * len(names)), 2.0))
        draw_connection(rows, "", ax, columns)
        row = lanes[0]
        points = [(leg.hop, tip) for leg, _, tip in row.arrows]
        start = row.start
        kind = "lanes"
    return fig, ax, _places(order, points, items, start), kind


def frames(rows: pd.DataFrame, order: list[str] | None = None,
           items: list[Step] | None = None) -> tuple[list[Frame], str, str]:
    """Return the frames of one packet's step-through (``rows``: its hop table, from
    :func:`ambientlab.book.walk` or :func:`ambientlab.book.send`, one packet), its figure as SVG
    text and the figure's kind (``node``: the node picture; ``lanes``: the packet's sequence
    diagram, its columns ``order`` when given: the whole walk's, so that every packet of a
    connection keeps them in the same places): one frame per step of :func:`ambientlab.book.steps`
    (``items``, when the caller has them already), in order."""
    import matplotlib.pyplot as plt

    from ambientlab.book.fonts import use_cjk_fallback

    use_cjk_fallback()  # outside the rc_context below, which would undo it at its end

    items = steps(rows) if items is None else items
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ambientlab"}):
        fig, ax, places, kind = _draw(rows, items, order)
        fig.draw_without_rendering()  # lays the figure out (the node figure's equal aspect), so that its tight box is known
        box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.05)  # inches: the part of the figure saved
        out = []
        lost = legs(rows)[1] == "lost"
        for k, (step, xy) in enumerate(zip(items, places, strict=True), 1):
            px, py = ax.transData.transform(xy) / fig.dpi
            hops = f" <small>(hop {', '.join(map(str, step.hops))})</small>" if step.hops else ""
            out.append(Frame(k, step.text(), step.html() + hops, round(float((px - box.x0) / box.width), 4),
                             round(float(1 - (py - box.y0) / box.height), 4), lost and k == len(items)))
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", bbox_inches=box, metadata={"Date": None, "Creator": None})
        plt.close(fig)
    return out, buffer.getvalue(), kind


_SCRIPT = """(function () {
  var box = document.currentScript.parentElement;
  var frames = JSON.parse(box.querySelector("script.al-frames").textContent);
  var dot = box.querySelector(".al-dot"), cap = box.querySelector(".al-caption");
  var count = box.querySelector(".al-count"), play = box.querySelector("[data-act=play]");
  var at = 0, timer = null;
  function say(el, en, zh) {  // both languages; the page's language shows one (the player's style)
    el.innerHTML = '<span lang="en">' + en + '</span><span lang="zh-CN">' + zh + '</span>';
  }
  function show(k) {
    at = Math.max(0, Math.min(frames.length - 1, k));
    var f = frames[at];
    dot.style.left = (100 * f.x) + "%"; dot.style.top = (100 * f.y) + "%";
    dot.classList.toggle("al-lost", f.lost);
    cap.innerHTML = f.caption;
    say(count, "step " + f.number + " of " + frames.length, "\u7b2c " + f.number + " \u6b65\uff0c\u5171 " + frames.length + " \u6b65");
    var list = box.nextElementSibling;  // the story's numbered list (parsed after this script ran)
    if (list && list.tagName === "OL") {
      for (var i = 0; i < list.children.length; i++) list.children[i].classList.toggle("al-now", i === at);
    }
  }
  function stop() { if (timer) { clearInterval(timer); timer = null; say(play, "\\u25b6 play", "\\u25b6 \\u64ad\\u653e"); } }
  box.querySelector(".al-controls").addEventListener("click", function (e) {
    var button = e.target.closest("button"), act = button && button.getAttribute("data-act");
    if (act === "first") { stop(); show(0); }
    else if (act === "prev") { stop(); show(at - 1); }
    else if (act === "next") { stop(); show(at + 1); }
    else if (act === "play" && timer) { stop(); }
    else if (act === "play") {
      if (at === frames.length - 1) show(0);
      say(play, "\\u23f8 pause", "\\u23f8 \\u6682\\u505c");
      timer = setInterval(function () { if (at === frames.length - 1) stop(); else show(at + 1); }, 1600);
    }
  });
  if (/^zh/.test(document.documentElement.lang)) {  // the buttons' tooltips, in the page's language
    box.querySelectorAll("button[data-title-zh]").forEach(function (b) { b.title = b.getAttribute("data-title-zh"); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { show(at); });
  show(0);
})();"""

# The player's words in both languages: the page's language (html lang, "zh-CN" in the Chinese
# edition) shows one of them, by the style below; the steps themselves are outputs, shared.
BUTTONS = (("first", "back to the first step", "first", "回到第一步", "第一步"),
           ("prev", "one step back", "◀ back", "后退一步", "◀ 上一步"),
           ("play", "play the steps", "▶ play", "逐步播放", "▶ 播放"),
           ("next", "one step forward", "step ▶", "前进一步", "下一步 ▶"))
LEGEND_TITLE = ("How to read this figure", "如何读这张图")
LEGENDS_ZH = {
    "node": ("橙色圆环是这一步完成后数据包所在的位置；图下的说明就是这一步，下方编号列表中的同一行也会标出。蓝色箭头是数据包的路径；"
             "虚线箭头止于隧道解封装数据包的地方。红色虚线连接一条隧道的两端：封装后的数据包作为 UDP 经 veth 传送，并不沿着它走。"
             "灰线是这个数据包没有经过的连线；ztunnel 中的白框是接收它的监听套接字。由套接字发出的数据包从它所在主机的框里出发。"
             "数据包丢失的地方，圆环变成红色。"),
    "lanes": ("每一列是这个数据包经过的一个 pod、一台主机或集群的其余部分；每个箭头是一段路程，"
              "标着它离开和进入的设备（红色虚线：在隧道内）。橙色圆环是这一步完成后数据包所在的位置；图下的说明就是这一步，下方编号列表中也会标出。同一个网络命名空间内的步骤不移动圆环；"
              "数据包丢失的地方，圆环变成红色。"),
}

LEGENDS = {
    "node": ("The orange ring is where the packet is once this step is done; the caption is the step, "
             "and the same line is marked in the numbered list below. Blue arrows are the packet's path; a dashed one "
             "ends where a tunnel unwraps the packet. Red dashed lines join a tunnel's two ends: the wrapped packet "
             "travels as UDP by the veth, not along them. Grey lines are wires this packet does not take; a white box "
             "in ztunnel is the listening socket that receives it. A packet that a socket sends starts in its host's "
             "box. The ring turns red where the packet is lost."),
    "lanes": ("Each column is a pod, a host or the rest of the cluster that this packet crosses; each "
              "arrow is one stretch, labelled with the devices it leaves and enters (dashed red: inside a tunnel). The "
              "orange ring is where the packet is once this step is done; the caption is the step, marked in the "
              "numbered list below too. Steps inside one namespace leave the ring in place; it turns red where the "
              "packet is lost."),
}

_STYLE = ("<style>.al-player{margin:.5em 0 1em;border:1px solid #ccd;border-radius:6px;padding:.5em;max-width:820px}"
          ".al-stage{position:relative}.al-stage img{width:100%;display:block}"
          ".al-dot{position:absolute;width:26px;height:26px;margin:-13px 0 0 -13px;border-radius:50%;"
          "border:4px solid #e67e22;background:rgba(230,126,34,.25);transition:left .4s,top .4s;pointer-events:none}"
          ".al-dot.al-lost{border-color:#c0392b;background:rgba(192,57,43,.45)}"
          ".al-controls{margin:.4em 0}.al-controls button{margin-right:.3em;font-size:.9em;cursor:pointer}"
          ".al-count{margin-left:.5em;color:#555;font-size:.9em}.al-caption{min-height:2.6em}"
          ".al-legend{font-size:.8em;color:#555;margin:.3em 0 0}li.al-now{background:#fdebd0}"
          '.al-player [lang="zh-CN"]{display:none}html[lang^="zh"] .al-player [lang="zh-CN"]{display:revert}'
          'html[lang^="zh"] .al-player [lang="en"]{display:none}</style>')


def _both(en: str, zh: str) -> str:
    return f'<span lang="en">{en}</span><span lang="zh-CN">{zh}</span>'


def player_html(rows: pd.DataFrame, order: list[str] | None = None, numbered: list[Step] | None = None) -> str:
    """Return the step-through of one packet (its hop table ``rows``) as self-contained HTML:
    its figure, a marker on the packet's place at the current step, the step's line as the
    caption, and buttons to go back, forward and play. Put it just before the story's numbered
    list, whose current step it highlights (``numbered``: the packet's :func:`steps`, when the caller
    has them already)."""
    items, svg, kind = frames(rows, order, numbered)
    label = str(rows["packet"].iloc[0])
    data = json.dumps([asdict(f) for f in items], ensure_ascii=False)
    embedded = data.replace("</", "<\\/")  # no "</script>" inside the script element
    ident = "al-" + hashlib.sha256(f"{rows.attrs.get('capture', '')}|{label}|{data}|{svg}".encode()).hexdigest()[:12]
    image = base64.b64encode(svg.encode()).decode()
    walk, without = (html.escape(str(rows.attrs.get(key, "")), quote=True) for key in ("walk", "without"))
    buttons = "".join(f'<button data-act="{act}" title="{tip}" data-title-zh="{tip_zh}">{_both(en, zh)}</button>'
                      for act, tip, en, tip_zh, zh in BUTTONS)
    return (
        f'{_STYLE}<div class="al-player" id="{ident}" data-capture="{html.escape(str(rows.attrs.get("capture", "")), quote=True)}" '
        f'data-walk="{walk}" data-without="{without}" data-packet="{html.escape(label, quote=True)}">'
        f'<div class="al-stage"><img alt="the path of packet {html.escape(label, quote=True)}" '
        f'src="data:image/svg+xml;base64,{image}"><div class="al-dot"></div></div>'
        f'<div class="al-controls">{buttons}'
        f'<span class="al-count">{_both(f"step 1 of {len(items)}", f"第 1 步，共 {len(items)} 步")}</span></div>'
        f'<div class="al-caption">{items[0].caption if items else ""}</div>'
        f'<details class="al-legend"><summary>{_both(*LEGEND_TITLE)}</summary>'
        f'<div lang="en">{LEGENDS[kind]}</div><div lang="zh-CN">{LEGENDS_ZH[kind]}</div></details>'
        f'<script type="application/json" class="al-frames">{embedded}</script>'
        f"<script>{_SCRIPT}</script></div>"
    )


class Story:
    """The steps of one packet and its hop table, shown as a numbered list with the table folded
    under it (HTML), or as numbered lines (text). Given the packet's own hop table (``rows``), the
    HTML starts with its step-through (:func:`player_html`, with the walk's lanes ``order``)."""

    def __init__(self, label: str, items: list[Step], table: pd.DataFrame, rows: pd.DataFrame | None = None,
                 order: list[str] | None = None) -> None:
        self.label, self.steps, self.table, self.rows, self.order = label, items, table, rows, order

    def __repr__(self) -> str:
        lines = [f"{self.label}: {len(self.steps)} steps"]
        lines += [f"{n:2}. {s.text()}" for n, s in enumerate(self.steps, 1)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        items = []
        for s in self.steps:
            hops = ", ".join(map(str, s.hops))
            line = s.html()
            items.append(f"<li>{line} <small>(hop {hops})</small></li>" if hops else f"<li>{line}</li>")
        table = self.table.to_html(escape=True)
        player = player_html(self.rows, self.order, self.steps) if self.rows is not None else ""
        return (f"<p><b>{html.escape(self.label)}</b></p>{player}<ol>{''.join(items)}</ol>"
                f"<details><summary>The full hop table ({len(self.table)} rows shown)</summary>{table}</details>")


def story(frame: pd.DataFrame, packet: int | str) -> Story:
    """Return the story of packet ``packet`` of walk ``frame``: its :func:`steps` and its hop
    table (:func:`ambientlab.book.hops`), shown as a numbered list with the table folded under it,
    after the packet's step-through."""
    rows = packet_hops(frame, packet)
    return Story(str(rows["packet"].iloc[0]), steps(rows), hop_view(rows), rows, lanes(frame))
