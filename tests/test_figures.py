"""The node picture: which pods it says are elsewhere, how it names devices, where a path ends."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from ambientlab import load_capture
from ambientlab.book.figures import bilingual, draw_walk, moved_pods, path_trace
from ambientlab.book.fonts import CJK_FONT, use_cjk_fallback
from ambientlab.core.trace.demo import WORLD, demo_network
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
    assert "reviews-v1 (recorded here;\nin the walks: ambient-worker)\n此处为实录；走查中\n在 ambient-worker" in texts
    assert "reviews-v1" not in texts
    assert bilingual(WORLD) in texts and bilingual(WORLD).endswith("\n集群的其余部分（eth0）")


def test_a_word_label_carries_its_chinese_and_a_name_stands_alone() -> None:
    assert bilingual("routing decision: for this host, or forward?").split("\n")[1:] == ["路由决策：", "交给本机，", "还是转发？"]
    assert bilingual("reviews-v2") == "reviews-v2"
    assert bilingual("socket 15001", "套接字 15001") == "socket 15001\n套接字 15001"


def test_the_figures_draw_chinese_with_a_cjk_font() -> None:
    assert use_cjk_fallback() and matplotlib.rcParams["font.family"][-1] == CJK_FONT
    fig, ax = plt.subplots()
    ax.set_title("路由决策 routing")
    fig.canvas.draw()  # a "Glyph missing" warning would fail here (warnings are errors): the CJK font drew them
    plt.close(fig)
