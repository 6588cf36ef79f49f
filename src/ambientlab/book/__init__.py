"""The chapters' API: the one module a chapter imports (``from ambientlab import book``).

Everything a chapter does with the recorded data goes through a name here, so that a chapter's
code shows what a reader should learn to type, not plumbing. The book's page "The chapters' API"
lists every name with the chapter that first uses it (:mod:`ambientlab.book.apidoc` writes it).

- Opening the data: :func:`chapter`, :func:`capture`, :class:`Capture`, :func:`about`,
  :func:`show`, :func:`provenance`, :func:`records`, :func:`jsonl`, :func:`compact`,
  :data:`VARIABLE`, :class:`CaptureMismatch`.
- Walks (the tracer's answers): :data:`WALKS` (each with its ``doc``), :func:`walk`,
  :func:`packets`, :func:`hops`, :data:`PIECES`, :func:`outcomes`, :func:`compare_designs`,
  :func:`design_changes`, :data:`WORLD`; :func:`which_design` (which design a capture's rules show).
- One host's routing: :func:`node`, :func:`route_get`, :func:`render_route`, :func:`ip`,
  :func:`ip_text`.
- A walk as a story: :func:`story` (a :class:`Story`: the packet's step-through, the numbered
  :func:`steps`, each a :class:`Step`, with the hop table folded under them), :func:`draw_connection` (a whole
  connection as a sequence diagram), :func:`who_connects` (who connects to whom from which address).
- Figures: :func:`draw_cluster`, :func:`draw_node`, :func:`draw_walk`, :func:`split_at_underlay`.
- kube-proxy's service chains (reconstructed): :func:`service_node` (the node the ``service-*``
  walks play on), :func:`service_branches` (a service's endpoints and their chances).
- Exercises: :func:`answer`, :func:`hint`; one packet of your own, walked by the tracer:
  :func:`send`, read with :func:`devices`, :func:`decision`, :func:`ending`; or chosen with the
  controls of :func:`explorer` (live in JupyterLab).
- Reading the rules: :func:`hook_paths` and :func:`draw_hooks` (the netfilter hooks and routing
  decisions, as the tracer passes them), :func:`named_rules` and :func:`read_rule` (a rule's book name, and its parts put into words),
  :func:`mark_sheet` (the mark cheat sheet),
  :func:`pod_set` (an ipset as a ``netaddr.IPSet``), :func:`route_tables` (tables 100-102 of two hosts side
  by side), :func:`veth_owners` (which pod is behind each veth).
- The live lab's recordings: :func:`recorded_traces`, :func:`recorded_trace` (a
  :class:`RecordedTrace`), :func:`verdict`, :class:`Connection`, :class:`HboneConnection`,
  :func:`predict`, :func:`predict_hbone` (a :class:`Prediction`), :func:`lab_network`,
  :func:`tls_records`, :func:`plaintext_hits`.

Matplotlib is imported by the figure functions when first called.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from ambientlab import __version__
from ambientlab.book.addresses import pod_set, route_tables, veth_owners
from ambientlab.book.chapters import CHAPTERS, VARIABLE, CaptureMismatch, chapter_capture
from ambientlab.book.check import answer, hint
from ambientlab.book.display import hops, provenance, show
from ambientlab.book.explorer import explorer
from ambientlab.book.fonts import use_cjk_fallback
from ambientlab.book.hooks import draw_hooks, hook_paths
from ambientlab.book.marks import mark_sheet
from ambientlab.book.packet import decision, devices, ending, send
from ambientlab.book.player import Story, story
from ambientlab.book.reading import named_rules, read_rule
from ambientlab.book.story import Step, draw_connection, steps, who_connects
from ambientlab.core.capture import Capture, load_capture
from ambientlab.core.parse.ip_route import render_route
from ambientlab.core.parse.wire import plaintext_hits, tls_records
from ambientlab.core.recordings import RecordedTrace, recorded_trace, recorded_traces, verdict
from ambientlab.core.redirection import capture_rules, classify
from ambientlab.core.tables import compact
from ambientlab.core.trace import host_from_capture, ipv4
from ambientlab.core.trace.batch import answer as _route_answer
from ambientlab.core.trace.batch import parse_query, public
from ambientlab.core.trace.breaks import PIECES
from ambientlab.core.trace.demo import WORLD
from ambientlab.core.trace.designs import changes as design_changes
from ambientlab.core.trace.designs import compare_designs
from ambientlab.core.trace.host import Host
from ambientlab.core.trace.predict import Connection, HboneConnection, Prediction, predict, predict_hbone
from ambientlab.core.trace.predict import network_for as lab_network
from ambientlab.core.trace.walks import WALKS, outcomes, packet_hops, walk

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ambientlab.core.trace.network import Network


def chapter(number: str) -> Capture:
    """Open chapter ``number``'s capture (``"08"``) and return it.

    The capture is the book's own, or the one ``$AMBIENTLAB_CAPTURE`` names (README: capture
    your own cluster), checked for the files the chapter reads and, for the chapters that walk
    the demo's pods, for the same node layout: what is missing is named in one
    :class:`CaptureMismatch`. Prints the package's version and the capture's name, lets tables
    show long cells whole, and lets figures draw Chinese (:func:`ambientlab.book.fonts.use_cjk_fallback`).
    """
    if number not in CHAPTERS:
        raise KeyError(f"no chapter {number!r}; chapters: {', '.join(CHAPTERS)}")
    spec = CHAPTERS[number]
    opened = chapter_capture(spec.capture, needs=spec.needs, layout=spec.layout)
    pd.set_option("display.max_colwidth", None)
    use_cjk_fallback()  # before the chapter's first figure: their Chinese labels
    print("ambientlab", __version__, "| capture:", opened.name)
    return opened


def capture(name: str) -> Capture:
    """Return the capture ``name`` under ``data/`` (or at the folder ``name``)."""
    return load_capture(name)


def about(capture: Capture) -> str:
    """Return one line on ``capture``: its name, how many files, and how many of each origin."""
    origins = {str(k): int(v) for k, v in capture.files["origin"].value_counts().items()}
    return f"{capture.name} | {len(capture.files)} files, origins: {origins}"


def records(capture: Capture, path: str) -> list[dict[str, Any]]:
    """Return file ``path`` of ``capture`` as JSON records (iproute2's ``-j`` keys where they
    exist), parsed with the parser its manifest names."""
    return capture.records(path)


def jsonl(capture: Capture, path: str, **where: Any) -> pd.DataFrame:
    """Return JSON-lines file ``path`` of ``capture`` (a log or a recording of the lab) as a
    DataFrame, one row per line and one column per key, values as JSON has them (lists stay
    lists). Only the lines whose keys equal ``where`` (``event="tunnel"``) are kept. The file is
    checked by its manifest's parser first."""
    capture.parse(path)
    rows = [json.loads(line) for line in capture.text(path).splitlines() if line.strip()]
    return pd.DataFrame([r for r in rows if all(r.get(k) == v for k, v in where.items())])


def packets(frame: pd.DataFrame) -> pd.Series:
    """Return the packets of walk ``frame`` in the order they were sent, each with its number of hops."""
    counts = frame.groupby("packet", sort=False).size()
    return counts.rename("hops").rename_axis("packet")


def node(capture: Capture, host: str = "node") -> Host:
    """Return the tracer's model of one host of ``capture`` (``"node"``, ``"ztunnel"`` or a pod's
    folder): its rules, routes and sysctls, with ``route_get(dst, src, iif, mark)``."""
    return host_from_capture(capture, host)


def route_get(model: Host, query: str) -> dict[str, Any]:
    """Return the tracer's answer to ``ip route get QUERY`` on ``model`` (for example
    ``"10.244.2.7 from 10.244.2.3 iif vethproductpage mark 0x100"``), with the keys that
    ``ip -j route get`` prints (:func:`render_route` prints it as iproute2 does)."""
    return public(_route_answer(model, parse_query(query)))


def ip(text: str) -> int:
    """Return the IPv4 address ``text`` as the integer the tracer's packets carry."""
    return ipv4.to_int(text)


def ip_text(value: int) -> str:
    """Return the integer IPv4 address ``value`` as dotted text (the inverse of :func:`ip`)."""
    return ipv4.to_text(value)


def _network(where: Capture | Network) -> Network:
    if isinstance(where, Capture):
        from ambientlab.core.trace.demo import demo_network

        return demo_network(where)
    return where


def draw_cluster(nodes: pd.DataFrame, pods: pd.DataFrame, ztunnels: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Draw the cluster: its nodes, the pods on each, and each node's ztunnel. Return the axes."""
    from ambientlab.book import figures

    return figures.draw_cluster(nodes, pods, ztunnels, ax)


def draw_node(where: Capture | Network, title: str = "", ax: Axes | None = None, node: str = "ambient-worker2") -> Axes:
    """Draw one node of a capture (or a network the tracer built): its pods, ztunnel, veths and
    tunnels. Return the axes."""
    from ambientlab.book import figures

    return figures.draw_node(_network(where), title, ax, node)


def draw_walk(where: Capture | Network, frame: pd.DataFrame, title: str = "", packet: int | str | None = None,
              ax: Axes | None = None, node: str = "ambient-worker2") -> Axes:
    """Draw the node and the path of walk ``frame`` (or of its packet ``packet``): solid arrows
    on wires, dashed ones inside a tunnel. Return the axes."""
    from ambientlab.book import figures

    return figures.draw_walk(_network(where), frame, title, ax, packet, node)


def service_node(capture: Capture) -> Network:
    """Return the demo node with kube-proxy's reconstructed service chains and details-v1's
    replica outside the mesh: the network the ``service-*`` walks play on (draw their walks on it)."""
    from ambientlab.core.trace.kubeproxy import kube_proxy_network

    return kube_proxy_network(capture)


def service_branches(capture: Capture, service: str = "default/reviews:http") -> pd.DataFrame:
    """Return the endpoints kube-proxy's chain for ``service`` can send a new connection to, one
    row each: the rule's line, its written probability, the chance a connection takes it, its
    ``KUBE-SEP-…`` chain and the endpoint (read from the reconstructed rules)."""
    from ambientlab.core.trace.kubeproxy import service_branches as branches

    return branches(capture, service)


def which_design(capture: Capture | str) -> str:
    """Return one sentence: which design of ambient redirection the ``iptables-save`` outputs of
    ``capture`` (a capture or its name) show (2022 node-level, 1.22 in-pod TPROXY, 1.24+ in-pod
    REDIRECT), and the rule, file and line that show it."""
    found = classify(capture_rules(load_capture(capture) if isinstance(capture, str) else capture))
    return found.sentence()


def split_at_underlay(frame: pd.DataFrame, packet: int | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return a two-node walk (or its packet ``packet``) as two one-node walks: the first node's
    and the second node's, each drawable with :func:`draw_walk` on its own node's capture."""
    from ambientlab.book import figures

    return figures.split_at_underlay(packet_hops(frame, packet) if packet is not None else frame)


__all__ = [
    "PIECES",
    "VARIABLE",
    "WALKS",
    "WORLD",
    "Capture",
    "CaptureMismatch",
    "Connection",
    "HboneConnection",
    "Prediction",
    "RecordedTrace",
    "Step",
    "Story",
    "about",
    "answer",
    "capture",
    "chapter",
    "compact",
    "compare_designs",
    "decision",
    "design_changes",
    "devices",
    "draw_cluster",
    "draw_connection",
    "draw_hooks",
    "draw_node",
    "draw_walk",
    "ending",
    "explorer",
    "hint",
    "hook_paths",
    "hops",
    "ip",
    "ip_text",
    "jsonl",
    "lab_network",
    "mark_sheet",
    "named_rules",
    "node",
    "outcomes",
    "packets",
    "plaintext_hits",
    "pod_set",
    "predict",
    "predict_hbone",
    "provenance",
    "read_rule",
    "recorded_trace",
    "recorded_traces",
    "records",
    "render_route",
    "route_get",
    "route_tables",
    "send",
    "service_branches",
    "service_node",
    "show",
    "split_at_underlay",
    "steps",
    "story",
    "tls_records",
    "verdict",
    "veth_owners",
    "walk",
    "which_design",
    "who_connects",
]
