"""Parsers: recorded files, hand-made edge cases, and errors that name file, line and token."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

import pandas as pd
import pytest

from ambientlab import ParseError, load_capture
from ambientlab.core.capture import list_captures
from ambientlab.core.parse import (
    parse,
    parse_cni_log,
    parse_ip_addr,
    parse_ip_link,
    parse_ip_route,
    parse_ip_rule,
    parse_ipset,
    parse_iptables_save,
    parse_kubectl,
    parse_route_get,
    to_records,
)


@pytest.fixture(scope="module")
def demo():  # type: ignore[no-untyped-def]
    return load_capture("kind-2022-ambient-worker2")


def test_node_rules_of_the_demo(demo) -> None:  # type: ignore[no-untyped-def]
    rules = demo.parse("node/ip-rule.txt")
    assert list(rules["priority"]) == [0, 100, 101, 102, 103, 32766, 32767]
    assert rules.loc[2, "goto"] == 32766 and rules.loc[2, "fwmark"] == "0x200" and rules.loc[2, "fwmask"] == "0x200"
    assert list(rules["table"].fillna("-")) == ["local", "-", "101", "102", "100", "main", "default"]
    assert str(rules["priority"].dtype) == "Int64"


def test_tables_keep_onlink_and_scope(demo) -> None:  # type: ignore[no-untyped-def]
    t102 = to_records("ip-route", demo.parse("node/ip-route-table-102.txt"))
    assert t102 == [
        {"dst": "default", "gateway": "10.244.2.10", "dev": "veth6cc9a213", "flags": ["onlink"]},
        {"dst": "10.244.2.10", "dev": "veth6cc9a213", "scope": "link", "flags": []},
    ]


def test_local_routes_are_typed(demo) -> None:  # type: ignore[no-untyped-def]
    local = demo.parse("node/ip-route-table-local.txt")
    assert set(local["type"]) == {"local", "broadcast"}
    zt = demo.parse("ztunnel/ip-route-table-100.txt")
    assert to_records("ip-route", zt) == [{"type": "local", "dst": "default", "dev": "lo", "scope": "host", "flags": []}]


def test_ipset_of_the_demo(demo) -> None:  # type: ignore[no-untyped-def]
    parsed = demo.parse("node/ipset-list.txt")
    assert parsed.sets.iloc[0][["name", "type", "revision", "maxelem", "references", "numentries"]].tolist() == [
        "ztunnel-pods-ips", "hash:ip", 0, 65536, 1, 5]
    assert list(parsed.members["elem"]) == ["10.244.2.5", "10.244.2.2", "10.244.2.3", "10.244.2.8", "10.244.2.7"]


def test_iptables_rules_are_structured(demo) -> None:  # type: ignore[no-untyped-def]
    rules = demo.parse("node/iptables-save.txt").rules
    p10 = rules[rules["text"].str.startswith("! -s 10.244.2.10/32")].iloc[0]
    assert p10["matches"] == [{"module": "", "options": [
        {"option": "-s", "args": ["10.244.2.10/32"], "negated": True},
        {"option": "-i", "args": ["veth6cc9a213"], "negated": False}]}]
    assert p10["target"] == "MARK" and p10["target_options"] == [{"option": "--set-xmark", "args": ["0x210/0x210"]}]
    tproxy = demo.parse("ztunnel/iptables-save.txt").rules
    first = tproxy[tproxy["target"] == "TPROXY"].iloc[0]
    assert first["target_options"][0] == {"option": "--on-port", "args": ["15008"]}
    assert tproxy[tproxy["target"] == "LOG"].iloc[0]["target_options"][0]["args"] == ["mangle pre [ztunnel-gzlxs] "]


def test_geneve_details(demo) -> None:  # type: ignore[no-untyped-def]
    link = demo.parse("ztunnel/ip-d-link-pistioout.txt").iloc[0]
    assert link["linkinfo"] == {"info_kind": "geneve", "info_data": {
        "id": 1001, "remote": "10.244.2.1", "ttl": 0, "port": 6081, "udp_csum": False, "udp_zero_csum6_rx": True}}
    assert link["txqlen"] == 1000 and link["promiscuity"] == 0 and link["num_tx_queues"] == 1


def test_route_get_answers_and_errors() -> None:
    text = ("10.244.1.7 via 192.168.126.2 dev istioin table 100 src 10.244.1.1 uid 0\n    cache\n"
            "RTNETLINK answers: No route to host\nCommand failed -:2\n"
            "10.244.2.7 from 10.244.2.3 via 192.168.127.2 dev istioout table 101 mark 0x100\n    cache iif vethx\n")
    got = to_records("route-get", parse_route_get(text))
    assert got == [
        {"dst": "10.244.1.7", "gateway": "192.168.126.2", "dev": "istioin", "table": "100", "prefsrc": "10.244.1.1",
         "flags": [], "uid": 0, "cache": []},
        {"error": "No route to host", "failed": "-:2"},
        {"dst": "10.244.2.7", "from": "10.244.2.3", "gateway": "192.168.127.2", "dev": "istioout", "table": "101",
         "flags": [], "mark": 256, "cache": [], "iif": "vethx"},
    ]


def test_multipath_and_metrics() -> None:
    text = "10.15.0.0/16 proto static\n\tnexthop via 10.0.0.2 dev v0 weight 1\n\tnexthop via 10.0.1.2 dev v2 weight 3 linkdown\n" \
           "default via 10.0.0.254 dev v0 table 51 mtu lock 1400 advmss 1300\n"
    recs = to_records("ip-route", parse_ip_route(text))
    assert recs[0]["nexthops"][1] == {"gateway": "10.0.1.2", "dev": "v2", "weight": 3, "flags": ["linkdown"]}
    assert recs[1]["metrics"] == [{"mtu": 1400, "advmss": 1300}] and recs[1]["metrics_locked"] == ["mtu"]


def _rebuilt(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` made again from its values by pandas' public constructors (each value cast
    by pandas): what tables.frame_from_columns must give, though it skips those checks for speed."""
    data = {name: pd.Series(list(frame[name]), dtype=frame[name].dtype, index=frame.index) for name in frame.columns}
    return pd.DataFrame(data, index=frame.index, columns=frame.columns)


def test_frames_are_what_pandas_public_constructors_make() -> None:
    texts = [("ip-route", "10.0.0.0/24 via 192.0.2.92 dev d0 metric 64 \nblackhole 10.0.24.0/24 \n"
                          "local 10.244.2.1 dev cni0 table local proto kernel scope host src 10.244.2.1 \n"),
             ("ip-route", "default via 10.0.0.1 dev eth0 \n10.15.0.0/16 proto static \n\tnexthop via 10.0.0.2 dev v0 weight 1\n"
                          "fe80::/64 dev eth0 proto kernel metric 256 pref medium\n10.1.0.0/16 dev eth0 onlink \n"),
             ("ip-route", "")]
    results = [parse(kind, text) for kind, text in texts]
    for name in list_captures():
        capture = load_capture(name)
        results += [capture.parse(path) for path, kind in capture.files["parser"].items() if isinstance(kind, str)]
    frames = [r for r in results if isinstance(r, pd.DataFrame)]
    frames += [getattr(r, f.name) for r in results if is_dataclass(r) for f in fields(r)]
    assert len(frames) > 100
    for frame in frames:
        pd.testing.assert_frame_equal(frame, _rebuilt(frame), check_exact=True)


def test_kubectl_custom_columns_without_header(demo) -> None:  # type: ignore[no-untyped-def]
    pods = demo.parse("cluster/kubectl-get-pods-ambient-worker2.txt")
    assert list(pods.columns) == ["NAME", "IP", "NODE"] and len(pods) == 5


def test_cni_log() -> None:
    log = parse_cni_log("2022-10-12T07:34:33.224957Z\tinfo\tambient\tAdding route for x\n")
    assert log.iloc[0]["message"] == "Adding route for x"


@pytest.mark.parametrize(("parser", "text", "line", "token"), [
    (parse_ip_rule, "0:\tfrom all lookup local\n100:\tfrom all fwmark 0x200/0x200 jump 32766\n", 2, "jump"),
    (parse_ip_rule, "0:\tfrom all lookup local\nx:\tfrom all\n", 2, "x:"),
    (parse_ip_rule, "5:\tfrom 10.0.0.0/33 lookup 1\n", 1, "10.0.0.0/33"),
    (parse_ip_rule, "5:\tfrom all fwmark 0x1 fwmark 0x2 lookup 1\n", 1, "fwmark"),
    (parse_ip_route, "10.0.0.0/8 via 10.0.0.1 dev eth0 wibble\n", 1, "wibble"),
    (parse_ip_route, "10.0.0.0/8 via\n", 1, "via"),
    (parse_ip_route, "\tnexthop via 10.0.0.1\n", 1, "nexthop via 10.0.0.1"),
    (parse_ip_route, "10.0.0.0/8 dev eth0\nRTNETLINK answers: File exists\n", 2, "RTNETLINK answers: File exists"),
    (parse_ipset, "Name: s\nType: hash:ip\nHeader: family inet hashsize 1024 maxelem 65536 shiny\n", 3, "shiny"),
    (parse_ipset, "Name: s\nType: hash:ip\nHeader: family inet\nNumber of entries: 2\nMembers:\n10.0.0.1\n", 6, "10.0.0.1"),
    (parse_iptables_save, "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-xmark 0x1/0x1 --bogus 1\n", 3, "--bogus"),
    (parse_iptables_save, "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m frob --x -j ACCEPT\nCOMMIT\n", 3, "frob"),
    (parse_iptables_save, "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j NOWHERE\nCOMMIT\n", 3, "NOWHERE"),
    (parse_iptables_save, "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACCEPT\n", 3, "*mangle"),
    (parse_iptables_save, "-A PREROUTING -j ACCEPT\n", 1, "PREROUTING"),
    (parse_ip_addr, "1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue state UNKNOWN group default\n", 1, "lo"),
    (parse_ip_addr, "1: lo: <UP> mtu 1\n    link/loopback 00 brd 00\n    inet 127.0.0.1/8 scope host lo\n", 3, "inet"),
    (parse_ip_link, "3: g: <UP> mtu 1500 state UNKNOWN\n    link/ether aa brd ff promiscuity 0\n    geneve id 1 colour red\n", 3,
     "colour"),
    (parse_kubectl, "NAME   IP\na      1.2.3.4\nbb    5.6.7.8\n", 3, "bb    5"),
])
def test_errors_name_line_and_token(parser, text: str, line: int, token: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParseError) as err:
        parser(text, "f.txt")
    assert err.value.line == line and token in err.value.token and str(err.value).startswith(f"f.txt:{line}:")
