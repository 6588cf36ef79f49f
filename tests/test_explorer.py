"""The walk explorer's logic: widget values → the tracer's walk, and a clear message (never a
traceback) for input it cannot walk."""

from __future__ import annotations

import pytest

from ambientlab.book.explorer import CAPTURES, NONE, OUTSIDE, Problem, Settings, choices, explore, explorer, render
from ambientlab.book.packet import ending, send
from ambientlab.book.story import steps
from ambientlab.core.capture import load_capture

SERVICE = "service reviews (10.96.183.192)"


def test_the_first_state_is_the_tracers_walk_of_that_packet() -> None:
    result = explore(Settings())
    direct = send(load_capture(CAPTURES[0]), "productpage-v1", "10.96.183.192", 9080, src="10.244.2.3")
    assert [s.text() for s in result.story.steps] == [s.text() for s in steps(direct)]
    assert ending(result.frame) == "ztunnel 15001"


def test_each_toggle_changes_the_walk() -> None:
    inside = explore(Settings(source="ratings-v1", destination="pod reviews-v2 (10.244.2.5)"))
    outside = explore(Settings(source="ratings-v1", destination="pod reviews-v2 (10.244.2.5)", out_of_ipset=True))
    assert (ending(inside.frame), ending(outside.frame)) == ("ztunnel 15001", "ztunnel 15006")
    assert ending(explore(Settings(broken="node-table-101-ztunnel-route")).frame) == "dropped"
    udp = explore(Settings(proto="udp", port=53))
    assert "udp" in udp.story.steps[0].text() and ending(udp.frame) == "eth0"


def test_a_typed_address_of_the_cluster_is_walked_like_its_listed_name() -> None:
    by_label = explore(Settings(source="ztunnel", destination="pod reviews-v1 (10.244.1.23)", port=15008))
    typed = explore(Settings(source="ztunnel", destination="10.244.1.23", port=15008))
    assert [s.text() for s in by_label.story.steps] == [s.text() for s in typed.story.steps]


def test_the_choices_follow_the_design_of_the_capture() -> None:
    node_level, inpod = choices(CAPTURES[0]), choices("inpod-1.22-ambient-worker2")
    assert node_level.ipset and not inpod.ipset
    assert inpod.pieces == [NONE] and len(node_level.pieces) > 1
    assert "ztunnel" in node_level.sources and "ztunnel" not in inpod.sources
    assert "pod reviews-v1 (10.244.1.23)" in node_level.destinations  # listed by the other node's capture
    assert node_level.destinations[SERVICE] == "10.96.183.192"
    assert OUTSIDE in node_level.destinations.values()
    assert "node-nat-accept-0x100" not in node_level.pieces  # it needs kube-proxy's chains, empty in the captures
    assert choices("inpod-redirect-ambient-worker2").design != inpod.design


def test_the_outcomes_table_answers_where_and_by_which_devices() -> None:
    table = explorer(source="ztunnel", destination="pod reviews-v1 (10.244.1.23)", port=15008).outcomes(
        {"first": {}, "to reviews-v2": {"destination": "pod reviews-v2 (10.244.2.5)"}, "bad": {"port": 0}})
    assert list(table.columns) == ["ends", "steps", "devices", "last step"]
    assert table.loc["first", "ends"] == "eth0" and table.loc["first", "devices"].endswith("node/eth0")
    assert table.loc["bad", "ends"] == "cannot be walked" and "port 0" in table.loc["bad", "last step"]


@pytest.mark.parametrize(("settings", "message"), [
    (Settings(port=0), "port 0: a port is a number from 1 to 65535"),
    (Settings(port=65536), "port 65536"),
    (Settings(mark="zz"), "mark 'zz': write a number"),
    (Settings(source="ztunnel", mark=str(2**32)), "32 bits"),
    (Settings(destination="10.9.9.9"), "destination 10.9.9.9: no pod, service or node"),
    (Settings(destination="reviews"), "not an IPv4 address"),
    (Settings(source="nosuch"), "source 'nosuch'"),
    (Settings(capture="nosuch"), "capture 'nosuch'"),
    (Settings(proto="icmp"), "protocol 'icmp'"),
    (Settings(broken="node-ip-rule-101"), "piece 'node-ip-rule-101'"),
    (Settings(capture="inpod-1.22-ambient-worker2", broken="node-ip-rule-102"), "piece 'node-ip-rule-102'"),
    (Settings(capture="inpod-1.22-ambient-worker2", out_of_ipset=True), "no ipset of mesh pods"),
    (Settings(source="node", out_of_ipset=True), "node is not a pod"),
    (Settings(mark="0x100"), "a socket mark is set by a sending socket"),
])
def test_bad_input_gets_a_message_not_a_traceback(settings: Settings, message: str) -> None:
    with pytest.raises(Problem, match=message.replace("(", r"\(")):
        explore(settings)
    shown = render(settings)
    assert shown.startswith('<p class="al-problem"><b>Cannot walk this packet:</b>') and "Traceback" not in shown


def test_the_widgets_walk_again_when_a_value_changes() -> None:
    shown = explorer()
    box = shown._widgets()
    controls = {getattr(w, "description", ""): w for w in box.children}
    out = box.children[-1]

    def shown_html() -> str:
        return out.outputs[0]["data"]["text/html"]

    before = shown_html()
    controls["destination"].value = "pod reviews-v2 (10.244.2.5)"
    assert shown_html() != before and "10.244.2.5:9080" in shown_html()
    assert shown.settings.destination == "pod reviews-v2 (10.244.2.5)"
    controls["port"].value = 0
    assert "port 0: a port is a number from 1 to 65535" in shown_html()
    controls["capture"].value = "inpod-1.22-ambient-worker2"
    assert controls["take the source out of the ipset"].disabled
    assert controls["break"].options == (NONE,)


def test_the_static_rendering_says_it_is_live_in_jupyterlab() -> None:
    bundle = explorer(source="reviews-v2", destination="pod productpage-v1 (10.244.2.3)")._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "live in JupyterLab" in bundle["text/plain"] and "It is live in JupyterLab" in bundle["text/html"]
    assert "<th>source</th><td><code>reviews-v2</code>" in bundle["text/html"]
    assert 'class="al-player"' in bundle["text/html"]


def test_no_notebook_stores_widget_state() -> None:
    from pathlib import Path

    import nbformat

    for path in sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb")):
        assert "widgets" not in nbformat.read(path, as_version=4).metadata, \
            f"{path.name}: execute with --ExecutePreprocessor.store_widget_state=False (_config.yml)"
