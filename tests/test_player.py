"""The step-throughs: each frame is a computed step, every story in the chapters has one, and the
same walk always writes the same bytes."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from ambientlab import load_capture
from ambientlab.book.player import frames, player_html, story
from ambientlab.book.story import lanes, steps
from ambientlab.core.trace.walks import packet_hops, walk

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = load_capture("kind-2022-ambient-worker2")
PLAYER = re.compile(r'<div class="al-player" id="(al-[0-9a-f]{12})" data-capture="([^"]*)" data-walk="([^"]*)" '
                    r'data-without="([^"]*)" data-packet="([^"]*)">')
FRAMES = re.compile(r'<script type="application/json" class="al-frames">(.*?)</script>')


def _stored_players() -> list[tuple[str, tuple[str, ...], list[dict[str, object]]]]:
    """Return (notebook, the player's attributes, its frames) of every step-through in the
    notebooks' stored outputs."""
    out = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                text = "".join(output.get("data", {}).get("text/html", ""))
                for head, data in zip(PLAYER.findall(text), FRAMES.findall(text), strict=True):
                    out.append((path.name, tuple(html.unescape(a) for a in head), json.loads(data.replace("<\\/", "</"))))
    return out


def test_every_stored_frame_is_the_step_the_tracer_computes_now() -> None:
    players = _stored_players()
    named = [p for p in players if p[1][2]]
    assert len(players) >= 30 and len(named) >= 25, (len(players), len(named))
    for notebook, (_, capture, name, without, packet), data in named:
        rows = packet_hops(walk(load_capture(capture), name, without.split(",") if without else None), packet)
        assert [f["text"] for f in data] == [s.text() for s in steps(rows)], (notebook, name, packet)
        assert [f["number"] for f in data] == list(range(1, len(data) + 1))
        assert all(0 <= f["x"] <= 1 and 0 <= f["y"] <= 1 for f in data), (notebook, name, packet)


def test_every_story_in_the_chapters_has_its_step_through() -> None:
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                text = "".join(output.get("data", {}).get("text/html", ""))
                stories = text.count("<summary>The full hop table")
                assert text.count('<div class="al-player"') == stories, (path.name, cell.get("id"))


def test_the_marker_follows_the_packet_on_the_node() -> None:
    rows = packet_hops(walk(CAPTURE, "same-node-vip"), 1)
    shown, svg, kind = frames(rows)
    assert [f.text for f in shown] == [s.text() for s in steps(rows)]
    assert svg.startswith("<?xml") and "<svg" in svg and kind == "node"
    places = [(f.x, f.y) for f in shown]
    assert places[0][0] < 0.45  # at productpage's veth, on the node's left edge
    assert places[-1][0] > 0.7  # at ztunnel's socket, on the right
    assert len(set(places)) >= 4  # it moves: the node, the tunnel, ztunnel's veth, the socket


def test_a_packet_off_the_node_figure_is_played_on_its_sequence_diagram() -> None:
    rows = packet_hops(walk(load_capture("inpod-1.22-ambient-worker2"), "inpod-inbound"), 2)
    shown, svg, kind = frames(rows)
    assert len(shown) == len(steps(rows)) and "<svg" in svg and kind == "lanes"
    assert shown[0].x < shown[-1].x  # from the pod's lane to the rest of the cluster's


def test_the_same_walk_writes_the_same_bytes_and_ids_differ_between_packets() -> None:
    frame = walk(CAPTURE, "same-node-vip")
    first, again, other = player_html(packet_hops(frame, 1)), player_html(packet_hops(frame, 1)), player_html(packet_hops(frame, 2))
    assert first == again
    assert PLAYER.search(first).group(1) != PLAYER.search(other).group(1)  # type: ignore[union-attr]
    assert "</script>" not in FRAMES.search(first).group(1)  # type: ignore[union-attr]


def test_a_lost_packet_ends_on_a_red_ring_and_a_connections_packets_share_their_columns() -> None:
    broken = walk(CAPTURE, "same-node-vip", without="node-table-101-ztunnel-route")
    shown, _, _ = frames(packet_hops(broken, 1))
    assert [f.lost for f in shown] == [False] * (len(shown) - 1) + [True]
    assert not any(f.lost for f in frames(packet_hops(walk(CAPTURE, "same-node-vip"), 1))[0])
    probe = walk(load_capture("inpod-1.22-ambient-worker2"), "inpod-probe")
    first, second = (player_html(packet_hops(probe, n), lanes(probe)) for n in (1, 2))
    assert 'class="al-player"' in first and 'class="al-player"' in second
    assert story(probe, 1).order == story(probe, 2).order == lanes(probe)
