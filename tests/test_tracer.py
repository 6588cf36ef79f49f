"""The tracer on the demo capture: routing answers, walks, netfilter semantics, CLI."""

from __future__ import annotations

import json

import pytest

from ambientlab import load_capture
from ambientlab.cli.main import main
from ambientlab.core.trace import UnsupportedRoute, host_from_capture, host_from_texts, ipv4
from ambientlab.core.trace.batch import parse_query
from ambientlab.core.trace.demo import demo_network
from ambientlab.core.trace.netfilter import Packet, Ruleset, UnsupportedRule
from ambientlab.core.trace.walks import NODE_LEVEL, WALKS, packet_hops, walk
from tests.conftest import DATA

CAPTURE = load_capture("kind-2022-ambient-worker2")
NODE = DATA / "kind-2022-ambient-worker2" / "node"


@pytest.fixture(scope="module")
def node():  # type: ignore[no-untyped-def]
    return host_from_capture(CAPTURE, "node")


@pytest.mark.parametrize(("query", "dev", "table"), [
    ("10.244.2.7 from 10.244.2.3 iif vethproductpage mark 0x100", "istioout", "101"),
    ("10.244.2.7 from 10.244.2.3 iif vethproductpage", "istioin", "100"),
    ("10.244.2.7 from 10.244.2.3 iif vethproductpage mark 0x210", "vethreviewsv1", None),
    ("10.244.2.3 from 10.244.2.7 iif vethreviewsv1 mark 0x40", "veth6cc9a213", "102"),
    ("10.244.2.10 mark 0x100", "veth6cc9a213", "101"),
    ("10.244.2.1", "lo", "local"),
])
def test_route_get_on_the_recorded_node(node, query: str, dev: str, table: str | None) -> None:  # type: ignore[no-untyped-def]
    q = parse_query(query)
    got = node.route_get(q.dst, q.src, q.iif, q.mark)
    assert got["dev"] == dev and got.get("table") == table


def test_martian_source_and_forwarding_off(node) -> None:  # type: ignore[no-untyped-def]
    assert node.route_get("10.244.2.3", "10.244.2.1", "eth0")["error"] == "Invalid argument"
    zt = host_from_capture(CAPTURE, "ztunnel")
    assert zt.route_get("10.244.2.7", "10.244.2.3", "pistioout")["error"] == "No route to host"
    assert zt.route_get("10.244.2.7", "10.244.2.3", "pistioout", 0x400)["type"] == "local"
    assert zt.route_get("10.244.2.7", "10.244.2.3", "pistioout", 0xFD3)["error"] == "No route to host"
    assert node.route_get("8.8.8.8", "10.9.9.9")["error"] == "Network is unreachable"


def test_unsupported_features_are_errors() -> None:
    with pytest.raises(UnsupportedRoute, match="realms"):
        host_from_texts("h", "0:\tfrom all lookup local realms 3\n", "local 127.0.0.1 dev lo scope host\n")
    with pytest.raises(UnsupportedRule, match="only prefix masks"):
        Ruleset("*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -s 10.0.0.0/255.0.255.0 -j ACCEPT\nCOMMIT\n", "t")
    with pytest.raises(UnsupportedRule, match="statistic --mode nth"):
        Ruleset("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m statistic --mode nth --every 2 -j ACCEPT\nCOMMIT\n", "t")
    with pytest.raises(UnsupportedRule, match="only LOCAL"):
        Ruleset("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m addrtype --dst-type UNICAST -j ACCEPT\nCOMMIT\n", "t")


def test_connmark_masks_and_set_xmark() -> None:
    rules = Ruleset("*mangle\n:PREROUTING ACCEPT [0:0]\n"
                    "-A PREROUTING -j MARK --set-xmark 0x210/0x210\n"
                    "-A PREROUTING -j CONNMARK --save-mark --nfmask 0x210 --ctmask 0x210\n"
                    "-A PREROUTING -j MARK --set-xmark 0x40/0x40\nCOMMIT\n", "t")
    from ambientlab.core.trace.netfilter import Conn

    packet = Packet(src=1, dst=2, proto=6, mark=0x1001, conn=Conn((1, 2, 6, 0, 0), mark=0x8000))
    verdict = rules.run("PREROUTING", packet, nat=False)
    assert verdict.action == "ACCEPT" and packet.mark == 0x1251 and packet.conn is not None
    assert packet.conn.mark == 0x8210 and [h.line for h in verdict.hits] == [3, 4, 5]


def test_walk_same_node_vip_goes_through_istioout_to_15001() -> None:
    frame = walk(CAPTURE, "same-node-vip")
    syn = packet_hops(frame, 1)
    assert "0x100" in set(syn["mark_after"]) and "tunnel istioout" in set(syn["where"])
    assert syn.iloc[-1]["matched"] == "socket accepted from productpage"
    hbone = packet_hops(frame, 3)
    assert "-p tcp -m tcp --dport 15088 -j REDIRECT --to-ports 15008" in set(hbone["matched"])
    assert hbone.iloc[-1]["matched"].startswith("socket ztunnel_inbound (15008")
    reply = packet_hops(frame, 5)
    assert reply[reply["where"] == "mangle ztunnel-PREROUTING"]["mark_after"].tolist()[0] == "0x200"


def test_walk_borrowed_source_replies_use_table_102_and_0x4d3() -> None:
    frame = walk(CAPTURE, "borrowed-source")
    reply = packet_hops(frame, 2)
    assert "102: from all fwmark 0x40/0x40 lookup 102" in set(reply["matched"])
    assert "0x4d3" in set(reply["mark_after"])
    assert reply.iloc[-1]["matched"] == "socket to reviews-v2 (source: the client outside the mesh)"
    out = packet_hops(frame, 1)
    assert out[out["where"] == "mangle ztunnel-FORWARD"]["ctmark"].tolist() == ["0x210"]


def test_walk_every_scenario_ends_somewhere_and_cites_the_capture() -> None:
    for name in [n for n, w in WALKS.items() if w.design == NODE_LEVEL]:
        frame = walk(CAPTURE, name)
        last = frame.groupby("packet", sort=False).tail(1)
        assert last["hook"].isin(["deliver", "wire"]).all(), (name, last[["packet", "matched"]])
        assert not last["matched"].str.contains("no socket").any(), name
        cited = frame["line"].dropna()
        # the kube-proxy walks' one added pod route says it is assumed instead of citing a file
        cited = cited[cited != "assumed: details-v1 (second replica) on this node:1"]
        assert cited.str.match(r"kind-2022-ambient-worker2/(node|ztunnel)/[\w.-]+:\d+$").all()


def test_a_veth_crossing_row_shows_the_mark_the_packet_arrives_with() -> None:
    frame = walk(CAPTURE, "same-node-vip")
    crossings = frame[frame["matched"] == "crosses a veth: mark and conntrack reset"]
    assert len(crossings) >= 2 and (crossings["mark_after"] == "0x0").all()
    assert "0x220" in set(crossings["mark_before"])  # the mark it had on the node, before the crossing
    for index in crossings.index:  # the next hop, in the other namespace, starts from that mark
        assert frame.loc[index + 1, "mark_before"] == "0x0"


def test_a_packet_that_arrives_in_a_pod_or_leaves_the_node_arrives_without_its_mark() -> None:
    frame = walk(CAPTURE, "same-node-vip")
    arrivals = frame[frame["matched"].str.startswith("arrives in pod ")]
    assert "0x220" in set(arrivals["mark_before"]) and (arrivals["mark_after"] == "0x0").all()
    out = walk(CAPTURE, "cross-node-hbone")
    leaving = out[out["matched"].str.startswith("leaves for ")]
    assert len(leaving) and (leaving["mark_after"] == "0x0").all()


def test_the_borrowed_source_client_is_outside_the_mesh_and_arrives_on_15006() -> None:
    frame = walk(CAPTURE, "borrowed-source")
    first = packet_hops(frame, 0)
    assert first.iloc[0]["host"] == "the rest of the cluster (eth0)"
    assert first.iloc[-1]["matched"] == "socket ztunnel_inbound_plaintext (15006)"
    assert "10.244.1.9" not in {ipv4.to_text(m) for m in demo_network(CAPTURE).machines["node"].rules.ipsets[
        "ztunnel-pods-ips"]}


def test_the_walks_use_one_pod_layout_and_dial_from_the_downstream_peer() -> None:
    syns = {name: walk(CAPTURE, name) for name in ("same-node-vip", "inbound-remote", "borrowed-source",
                                                   "pod-not-in-ipset", "ztunnel-own", "no-socket-marks")}
    for name, frame in syns.items():
        assert not frame["headers"].str.contains(r"> 10\.244\.2\.7:").any(), name  # reviews-v1 is not on this node
    sources = {name: frame[frame["hook"] == "wire"]["headers"].iloc[0].split(":")[0]
               for name, frame in ((n, packet_hops(f, p)) for n, f, p in (
                   ("same-node-vip", syns["same-node-vip"], 4), ("inbound-remote", syns["inbound-remote"], 3),
                   ("borrowed-source", syns["borrowed-source"], 1)))}
    assert sources == {"same-node-vip": "10.244.2.10", "inbound-remote": "10.244.1.19", "borrowed-source": "10.244.1.9"}


def test_pod_outside_the_ipset_reaches_15006_via_table_100() -> None:
    frame = walk(CAPTURE, "pod-not-in-ipset")
    syn = packet_hops(frame, 1)
    assert "103: from all lookup 100" in set(syn["matched"])
    assert syn.iloc[-1]["matched"] == "socket ztunnel_inbound_plaintext (15006)"


def test_cli_route_get_batch_json(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    routes = "".join(
        line + (f" table {t}" if t != "main" else "") + "\n"
        for t in ("100", "101", "102", "main", "local")
        for line in (NODE / f"ip-route-table-{t}.txt").read_text().splitlines())
    (tmp_path / "routes").write_text(routes)
    (tmp_path / "q").write_text("route get 10.244.2.7 from 10.244.2.3 iif vethproductpage mark 0x100\n"
                                "route get 10.244.2.3 from 10.244.2.1 iif eth0\nroute get 10.96.183.192\n")
    args = ["route-get", "--rules", str(NODE / "ip-rule.txt"), "--routes", str(tmp_path / "routes"),
            "--addrs", str(NODE / "ip-addr.txt"), "--batch", str(tmp_path / "q"), "--json"]
    assert main(args) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"dst": "10.244.2.7", "type": "unicast", "dev": "istioout", "gateway": "192.168.127.2", "table": "101"},
        {"error": "Invalid argument"},
        {"dst": "10.96.183.192", "type": "unicast", "dev": "eth0", "gateway": "172.18.0.1", "prefsrc": "172.18.0.2"},
    ]
    assert main(args[:-3] + ["10.244.2.9", "from", "10.244.2.3", "iif", "nosuch"]) == 2
    assert 'Cannot find device "nosuch"' in capsys.readouterr().err


def test_cli_walk_prints_each_packet(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["walk", "kind-2022-ambient-worker2", "kubelet"]) == 0
    out = capsys.readouterr().out
    assert "== 1 SYN kubelet -> productpage:9080" in out and "0x220" in out
    assert main(["walk", "kind-2022-ambient-worker2", "nosuch"]) == 2


def test_rule_names_are_table_chain_and_position() -> None:
    from ambientlab.core.capture import load_capture
    from ambientlab.core.constants import DEMO, INPOD
    from ambientlab.core.trace.names import chain_short, rule_name, rule_names

    names = rule_names(load_capture(DEMO).parse("node/iptables-save.txt"))
    assert names[36] == "mangle PRE-15"  # -p tcp -m set --match-set ztunnel-pods-ips src -j MARK 0x100
    assert names[50] == "nat PRE-1" and names[47] == "nat PREROUTING-2"
    assert len(set(names.values())) == len(names)  # no two rules share a name
    inpod = rule_names(load_capture(INPOD).parse("productpage-v1/iptables-save.txt"))
    assert len(set(inpod.values())) == len(inpod)
    assert chain_short("ISTIO_OUTPUT") == "OUT" and chain_short("KUBE-SERVICES") == "KUBE-SERVICES"
    assert rule_name("mangle", "ztunnel-FORWARD", 2) == "mangle FWD-2"


def test_a_local_route_found_in_the_merged_tables_is_ip_rule_0s() -> None:
    """With only the default ip rules the kernel looks local's and main's routes up in one trie;
    a local route found there was reached by ip rule 0 (lookup local), not 32766 (lookup main)."""
    from ambientlab.core.capture import load_capture
    from ambientlab.core.constants import INPOD
    from ambientlab.core.trace import host_from_capture

    node = host_from_capture(load_capture(INPOD), "node")
    local = node.route_get("10.244.2.1", mark=0)
    assert local["_rule"].priority == 0 and local["_route"].table == 255
    remote = node.route_get("10.244.1.5", mark=0)
    assert remote["_rule"].priority == 32766
