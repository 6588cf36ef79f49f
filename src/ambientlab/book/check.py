"""Self-checks for the chapters' exercises. Each right answer is computed from the data (and the
tracer), never typed in; :func:`answer` says "Correct." or gives a hint."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import pandas as pd

from ambientlab.core.capture import Capture, load_capture
from ambientlab.core.constants import DEMO, HBONE, INPOD, KEBE, LAB, WORKER
from ambientlab.core.trace import host_from_capture
from ambientlab.core.trace.breaks import PIECES
from ambientlab.core.trace.netfilter import Packet, Ruleset
from ambientlab.core.trace.walks import outcomes, packet_hops, walk


@cache
def _capture(name: str) -> Capture:
    return load_capture(name)


@cache
def _walk(scenario: str) -> pd.DataFrame:
    return walk(_capture(DEMO), scenario)


def _packet(scenario: str, packet: int) -> pd.DataFrame:
    return packet_hops(_walk(scenario), packet)


def _pod_outside_set() -> str:
    cap = _capture(KEBE)
    pods = cap.parse("cluster/kubectl-get-pods-o-wide.txt")
    on_node = set(pods.loc[pods["NODE"] == "ambient-worker2", "IP"])
    (ip,) = on_node - set(cap.parse("node/ipset-list.txt").members["elem"])
    return str(ip)


def _rule_for(mark: int, folder: str = "node") -> int:
    """Return the priority of the rule that decides for a packet with ``mark`` (a ``goto``
    that jumped to the looking-up rule counts as the deciding one)."""
    found = host_from_capture(_capture(DEMO), folder).route_get("10.244.2.7", mark=mark)
    return int((found["_via"] or found["_rule"]).priority)


def _xmark(mark: int, spec: str) -> int:
    rules = Ruleset(f"*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-xmark {spec}\nCOMMIT\n", "exercise")
    packet = Packet(src=1, dst=2, proto=6, mark=mark)
    rules.run("PREROUTING", packet, nat=False)
    return packet.mark


def _mark_after_prerouting(scenario: str, packet: int, host: str = "node") -> int:
    rows = _packet(scenario, packet)
    rows = rows[(rows["host"] == host) & (rows["hook"] == "PREROUTING")]
    return int(rows["mark_after"].iloc[-1], 16)


def _routing(scenario: str, packet: int, host: str = "node") -> pd.DataFrame:
    rows = _packet(scenario, packet)
    return rows[(rows["host"] == host) & (rows["hook"] == "routing")]


def _table_of(scenario: str, packet: int, host: str = "node") -> str:
    """Return the first routing table the packet's first lookup on ``host`` used."""
    wheres = _routing(scenario, packet, host)["where"]
    return str(wheres[wheres.str.startswith("table ")].iloc[0]).removeprefix("table ")


def _first_oif(scenario: str, packet: int, host: str = "node") -> str:
    rows = _routing(scenario, packet, host)
    return str(rows["oif"].dropna().iloc[0])


def _tunnel_vni(folder: str, dev: str) -> int:

    (rec,) = _capture(DEMO).records(f"{folder}/ip-d-link-{dev}.txt")
    return int(rec["linkinfo"]["info_data"]["id"])


def _outer_mark() -> int:
    rows = _packet("same-node-vip", 1)
    rows = rows[(rows["host"] == "node") & (rows["hook"] == "OUTPUT")]
    return int(rows["mark_after"].iloc[-1], 16)


def _tproxy_port(iif: str, dport: int) -> int:
    net_rules = Ruleset(_capture(DEMO).text("ztunnel/iptables-save.txt"), "ztunnel")
    packet = Packet(src=1, dst=2, proto=6, sport=1000, dport=dport, iif=iif)
    net_rules.run("PREROUTING", packet, nat=False)
    assert packet.tproxy is not None
    return packet.tproxy[1]


def _ctmark(scenario: str, packet: int) -> int:
    rows = _packet(scenario, packet)
    return int(rows[rows["host"] == "node"]["ctmark"].dropna().iloc[-1], 16)


def _breaks_only_remote() -> str:
    healthy_local = outcomes(_capture(DEMO), "no-socket-marks", None)["ends"].tolist()
    healthy_remote = outcomes(_capture(DEMO), "inbound-remote", None)["ends"].tolist()
    found = [p for p in PIECES if outcomes(_capture(DEMO), "no-socket-marks", p)["ends"].tolist() == healthy_local
             and outcomes(_capture(DEMO), "inbound-remote", p)["ends"].tolist() != healthy_remote]
    (piece,) = found
    return piece


def _first_lost_without_0x4d3() -> int:
    before = outcomes(_capture(DEMO), "no-socket-marks", None)["ends"]
    after = outcomes(_capture(DEMO), "no-socket-marks", "ztunnel-mark-0x4d3")["ends"]
    return int(next(p for p in after.index if after[p] != before[p]).split()[0])


def _kebe_ztunnel() -> str:

    routes = _capture(KEBE).records("node/ip-route-table-101.txt")
    (host,) = [r["dst"] for r in routes if r["dst"] != "default"]
    return str(host)


def _kebe_mtu() -> int:
    frame = _capture(KEBE).parse("node/ip-addr-istioout-excerpt.txt")
    return int(frame["mtu"].iloc[0])


def _far_source() -> str:
    import json

    events = [json.loads(line) for line in _capture(HBONE).text("session/worker-ztunnel-marks-2022.log").splitlines()]
    (onward,) = {e["onward"].split(" -> ")[0].rsplit(":", 1)[0] for e in events if e.get("event") == "tunnel"}
    return str(onward)


def _inpod_return_mark() -> str:
    answer = packet_hops(walk(_capture(INPOD), "inpod-inbound"), 4)
    (restored,) = set(answer[answer["matched"].astype(str).str.contains("--restore-mark")]["mark_after"])
    return str(restored)


def _inpod_probe_source() -> str:
    hops = walk(_capture(INPOD), "inpod-probe")
    (rule,) = [m for m in hops["matched"].astype(str) if "-j SNAT" in m]
    return rule.split("--to-source ")[1].split()[0]


def _lab_reset_piece() -> str:
    import json

    rows = [json.loads(line) for line in _capture(LAB).text("session/breaks-no-marks.jsonl").splitlines()]
    (piece,) = {r["piece"] for r in rows if "ConnectionResetError" in r["result"]}
    return str(piece)


EXERCISES: dict[str, tuple[Callable[[], Any], str]] = {
    "01-pod-outside-set": (
        _pod_outside_set,
        "Compare the IPs of the pods whose NODE is ambient-worker2 in kubectl-get-pods-o-wide.txt "
        "with the members of the ipset; give the IP as a string.",
    ),
    "01-rule-for-0x300": (
        lambda: _rule_for(0x300),
        "Go down the rules by priority; a rule matches when (mark XOR fwmark) AND fwmask is 0. "
        "0x300 has both bits 0x200 and 0x100 set: which of rules 100 and 101 comes first? Give the priority.",
    ),
    "02-xmark": (
        lambda: _xmark(0x210, "0x40/0x40"),
        "--set-xmark V/M first clears the bits of M, then XORs V: (0x210 AND NOT 0x40) XOR 0x40.",
    ),
    "02-xmark-full": (
        lambda: _xmark(0x100, "0x220/0xffffffff"),
        "A mask of 0xffffffff clears every bit before the XOR: the old mark does not survive.",
    ),
    "04-syn-mark": (
        lambda: _mark_after_prerouting("same-node-vip", 1),
        "Follow ztunnel-PREROUTING from the top for a TCP packet from productpage (in the ipset) that "
        "comes in on its veth: which MARK rule is the first to match?",
    ),
    "04-reply-mark": (
        lambda: _mark_after_prerouting("same-node-vip", 5),
        "The connection was opened by ztunnel, so FORWARD saved connmark 0x220. Which rule looks at "
        "the connmark, and what does it set?",
    ),
    "05-table-for-0x100": (
        lambda: int(_table_of("same-node-vip", 1)),
        "Rule 101 selects fwmark 0x100/0x100. Give the table number it looks up.",
    ),
    "05-outer-device": (
        lambda: host_from_capture(_capture(DEMO), "node").route_get("10.244.2.10", mark=0x100)["dev"],
        "Table 101 has a default route and a /32 for 10.244.2.10: the longest prefix wins.",
    ),
    "06-vni-istioout": (
        lambda: _tunnel_vni("node", "istioout"),
        "Read `ip -d link show istioout`: the number after `geneve id`.",
    ),
    "06-outer-mark": (
        _outer_mark,
        "The outer UDP packet leaves the node from 10.244.2.1: which rule of mangle ztunnel-OUTPUT "
        "matches that source, and what does it set?",
    ),
    "07-port-pistioin": (
        lambda: _tproxy_port("pistioin", 9080),
        "TCP arriving on pistioin for a port other than 15008: which TPROXY rule is the first to match?",
    ),
    "07-rule-0x4d3": (
        lambda: _rule_for(0x4D3, "ztunnel"),
        "In the ztunnel pod, which ip rule selects fwmark 0x4d3/0xfff? Give its priority.",
    ),
    "08-syn-device": (
        lambda: _first_oif("same-node-vip", 1),
        "The SYN carries mark 0x100 after PREROUTING. Which device does table 101's default route use?",
    ),
    "08-reply-mark": (
        lambda: _mark_after_prerouting("same-node-vip", 2, "node"),
        "ztunnel's answer comes back out of a tunnel, decapsulated on istioout: what do the first "
        "rules of ztunnel-PREROUTING do with packets from istioout?",
    ),
    "09-hbone-gateway": (
        lambda: str(_packet("cross-node-hbone", 2).query("host == 'node' and where == 'table main'")["matched"]
                    .iloc[0]).split(" via ")[1].split()[0],
        "The HBONE SYN to 10.244.1.23 is marked 0x220, so rule 100 sends it to main. Which route of "
        "main covers 10.244.1.0/24? Give its gateway.",
    ),
    "09-inbound-table": (
        lambda: int(_table_of("inbound-remote", 1)),
        "The SYN from the other node has no mark. Which rule catches a packet with no mark at all?",
    ),
    "10-connmark": (
        lambda: _ctmark("borrowed-source", 1),
        "ztunnel's SYN with a borrowed source is marked 0x210; which FORWARD rule saves it, and with which mask?",
    ),
    "10-reply-table": (
        lambda: int(_table_of("borrowed-source", 2)),
        "The reply gets mark 0x40 from its connmark. Which rule selects 0x40, and which table does it name?",
    ),
    "11-only-remote": (
        _breaks_only_remote,
        "Compare, piece by piece, the outcome table of the on-node connection with the one of the "
        "connection from another node. Give the piece's name as a string.",
    ),
    "03-members": (
        lambda: len(_capture(DEMO).parse("node/ipset-list.txt").members),
        "Count the lines under `Members:` (or the rows of the members table).",
    ),
    "11-lost-without-0x4d3": (
        _first_lost_without_0x4d3,
        "Remove the piece and compare where each packet of the on-node connection ends; give the "
        "number of the first packet that ends elsewhere.",
    ),
    "12-kebe-ztunnel": (
        _kebe_ztunnel,
        "Table 101 of every node holds a /32 route to that node's ztunnel. Read the second capture's table 101.",
    ),
    "12-kebe-mtu": (
        _kebe_mtu,
        "Read the istioout line of the second capture: the number after `mtu`.",
    ),
    "13-onward-table": (
        lambda: host_from_capture(_capture(DEMO), "ztunnel").route_get("10.244.2.7", mark=0x4D2).get("table", "main"),
        "0x4d2 AND 0xfff is 0x4d2: compare it with the fwmarks of rules 20000-20003. If none matches, "
        "which rule comes next, and which table does it look up? Give the table's name or number as a string.",
    ),
    "13-reset-piece": (
        _lab_reset_piece,
        "Read the `result` column of the no-marks rows: all failures but one are time-outs. Give the piece's name.",
    ),
    "14-far-table": (
        lambda: host_from_capture(_capture(WORKER), "node").route_get("10.244.1.23", src="10.244.2.10",
                                                                      iif="eth0").get("table", "main"),
        "The SYN carries no mark on ambient-worker: which rule matches every packet, and which table does it look "
        "up? Ask host_from_capture(worker, 'node').route_get(...). Give the table as a string.",
    ),
    "14-far-source": (
        _far_source,
        "Read the `onward` field of the far ztunnel's tunnel lines: the address before the port, as a string.",
    ),
    "15-return-mark": (
        _inpod_return_mark,
        "Look at packet 4 of the in-pod inbound walk: which rule changes its mark in mangle OUTPUT, and to what? "
        "Give the mark as a hex string.",
    ),
    "15-probe-source": (
        _inpod_probe_source,
        "Find the SNAT rule in the node's nat table (ISTIO_POSTRT): the address after --to-source, as a string.",
    ),
}


def _norm(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    text = str(value).strip().strip("'\"")
    try:
        return int(text, 0)
    except ValueError:
        return text.lower()


def solution(exercise: str) -> Any:
    """Return the right answer of ``exercise``, computed from the data."""
    return EXERCISES[exercise][0]()


def answer(exercise: str, given: Any) -> str:
    """Return "Correct." if ``given`` is the answer computed from the data, else a hint.

    Numbers may be given as ints or as strings (``"0x250"`` or ``"592"``).
    """
    compute, hint = EXERCISES[exercise]
    if _norm(given) == _norm(compute()):
        return "Correct."
    return f"Not yet. Hint: {hint}"
