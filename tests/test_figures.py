"""The node picture: which pods it says are elsewhere, how it names devices, where a path ends."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from ambientlab import load_capture
from ambientlab.book.figures import draw_walk, moved_pods, path_trace
from ambientlab.core.trace.demo import demo_network
from ambientlab.core.trace.walks import packet_hops, walk

CAPTURE = load_capture("kind-2022-ambient-worker2")


def test_the_pod_the_walks_place_on_the_other_node_is_read_from_its_pod_list() -> None:
    assert moved_pods(demo_network(CAPTURE)) == {"reviews-v1": "ambient-worker"}
    worker = demo_network(load_capture("kind-2022-ambient-worker"))
    assert moved_pods(worker, "ambient-worker") == {}


def test_a_path_ends_at_the_socket_its_tproxy_rule_named() -> None:
    frame = walk(CAPTURE, "same-node-vip")
    assert path_trace(demo_network(CAPTURE), packet_hops(frame, 1))[-1][:2] == ("socket:ztunnel:15001", "deliver")
    assert path_trace(demo_network(CAPTURE), packet_hops(frame, 5))[-1][:2] == ("socket:ztunnel:42000", "deliver")


def test_the_picture_qualifies_shared_device_names_and_marks_the_moved_pod() -> None:
    ax = draw_walk(demo_network(CAPTURE), walk(CAPTURE, "same-node-vip"), packet=1)
    texts = {t.get_text() for t in ax.texts}
    plt.close("all")
    assert {"node/eth0", "ztunnel/eth0", "socket 15001"} <= texts and "eth0" not in texts
    assert "reviews-v1 (recorded here;\nin the walks: ambient-worker)" in texts and "reviews-v1" not in texts
