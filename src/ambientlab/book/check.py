"""Self-checks for the chapters' exercises. Each right answer is computed from the data (and the
tracer), never typed in; :func:`answer` says "Correct." or gives a hint, a gentler one first.

Two kinds of exercise: look-ups and computations on the chapter's data, and "predict the walk":
the reader states the path of a packet that the chapter did not walk (the devices it crosses,
the ip rule and table that decide, or where it ends), and the check walks that packet with the
tracer (:mod:`ambientlab.book.packet`). Every exercise has layered hints, from a gentle one to
nearly the answer: the n-th wrong answer gets hint n, and :func:`hint` shows any of them. The first
hint points to where to look; it does not state the reasoning that is the answer.

Conventions of the answers: the deciding ip rule is the one whose action sends the packet to a
table, so after a ``goto`` it is the goto rule ("ip rule 100 (goto 32766) → table main"); when
that rule is removed, whichever rule then sends the packet to a table with a route decides. A
device that several network namespaces have (``eth0``, ``lo``) is written ``NAMESPACE/DEVICE``
when the path crosses more than one of them; a bare name is accepted where it is unambiguous.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pandas as pd

from ambientlab.book.packet import decision, devices, ending, send
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
    found = host_from_capture(_capture(DEMO), folder).route_get("10.244.2.5", mark=mark)
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




def _mark_out_of_set(pod: str, dst: str, dport: int) -> int:
    """Return the mark a TCP SYN from ``pod`` (on its veth) carries after the node's PREROUTING
    when ``pod``'s address has left the ipset (its namespace left the mesh)."""
    cap = _capture(DEMO)
    members = {int(ipaddress.ip_address(ip)) for ip in cap.parse("node/ipset-list.txt").members["elem"]}
    members.discard(int(ipaddress.ip_address(pod)))
    rules = Ruleset(cap.text("node/iptables-save.txt"), "node/iptables-save.txt", {"ztunnel-pods-ips": members})
    (veth,) = [r["dev"] for r in cap.records("node/ip-route-table-main.txt") if r["dst"] == pod]
    packet = Packet(src=int(ipaddress.ip_address(pod)), dst=int(ipaddress.ip_address(dst)), proto=6, sport=40000,
                    dport=dport, iif=veth)
    rules.run("PREROUTING", packet, nat=False)
    return packet.mark


def _reply_mark(frame: pd.DataFrame) -> int:
    """Return the mark of packet 2 (the answer) of hop table ``frame`` after the node's PREROUTING."""
    rows = frame[frame["packet"].str.startswith("2 ") & frame["host"].eq("node") & frame["hook"].eq("PREROUTING")]
    return int(rows["mark_after"].iloc[-1], 16)


def _tunnel_vni(folder: str, dev: str) -> int:

    (rec,) = _capture(DEMO).records(f"{folder}/ip-d-link-{dev}.txt")
    return int(rec["linkinfo"]["info_data"]["id"])






def _ctmark_of(frame: pd.DataFrame) -> int:
    """Return the last connection mark the node's hops of hop table ``frame`` show."""
    return int(frame[frame["host"] == "node"]["ctmark"].dropna().iloc[-1], 16)


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


# -- "predict the walk": one packet of the exercise's own, walked by the tracer ---------------------

REVIEWS_VIP = "10.96.183.192"  # the reviews service (recorded in Zhao's part 3)
DNS_POD = "10.244.0.2"  # a DNS pod on the control-plane node: address assumed (not in the capture)
DETAILS = "10.244.1.9"  # details-v1 on ambient-worker, outside the mesh (not in any ipset): address assumed
OUTSIDE_CLIENT = DETAILS  # a plaintext client outside the mesh: the one case where ztunnel borrows its address
REMOTE_ZTUNNEL = "10.244.1.19"  # ztunnel-w59fl on ambient-worker (recorded)


@cache
def _sent(capture: str, origin: str, dst: str, dport: int = 9080, **how: Any) -> pd.DataFrame:
    return send(_capture(capture), origin, dst, dport, **how)


def _zt_synack(to: str, **how: Any) -> pd.DataFrame:
    """ztunnel's SYN-ACK (as the reviews service) to pod address ``to``, from its 15001 socket."""
    return _sent(DEMO, "ztunnel", to, 40000, src=REVIEWS_VIP, sport=9080, flags="SA", mark=0x401, transparent=True,
                 **how)


@dataclass(frozen=True)
class Exercise:
    """One exercise: how its answer is computed, its hints (from a gentle one to nearly the
    answer), what kind of answer it takes, and feedback on wrong answers that are expected."""

    compute: Callable[[], Any]
    hints: tuple[str, ...]
    kind: str = "value"  # "value" (a number or a name), "devices", "decision" (ip rule, table) or "ending"
    traps: dict[str, str] = field(default_factory=dict)  # normalized wrong answer -> what it overlooks


FORMS = {
    "devices": 'Give the devices in order, as a list or a string ("devA, devB, …"); write a name that several '
               'namespaces have as NAMESPACE/DEVICE ("node/eth0").',
    "decision": 'Answer "ip rule P, table T" (or a tuple (P, T)); after a goto, P is the rule that matched and '
                'jumped ("ip rule P (goto Q), table T").',
    "ending": 'Answer "ztunnel PORT" (a listener), "pod NAME", "eth0" (it leaves the node), "reset" or "dropped".',
}

EXERCISES: dict[str, Exercise] = {
    "01-pod-outside-set": Exercise(
        _pod_outside_set,
        ("The second capture's pod list has a NODE column; its ipset has the members. One list is longer.",
         "Compare the IPs of the pods whose NODE is ambient-worker2 in kubectl-get-pods-o-wide.txt "
         "with the members of the ipset; give the IP as a string.")),
    "01-rule-for-0x300": Exercise(
        lambda: decision(host_from_capture(_capture(DEMO), "node").route_get("10.244.2.5", "10.244.2.3",
                                                                              "vethproductpage", 0x300)),
        ("Read the node's `ip rule` above from priority 0 down, as LARTC does, with the mark 0x300 in mind.",
         "A rule `fwmark V/M` matches when (mark AND M) equals V: 0x300 AND 0x200 is 0x200. The first rule that "
         "matches decides; if its action is `goto`, the lookup goes on at the rule it names, but the goto rule "
         "is still the deciding one.",
         "ip rule 100 matches (0x300 has bit 0x200) and jumps to 32766, which looks up main: "
         '"ip rule 100 (goto 32766) → table main". Answer "ip rule 100, table main".'),
        "decision",
        {"101 101": "0x300 has bit 0x100 too, so ip rule 101 would match, but the kernel tries a lower "
                    "priority first.",
         "32766 main": "The lookup does end in main by ip rule 32766, but the book counts the rule that matched "
                       "the packet and sent it there with its goto."}),
    "02-xmark": Exercise(
        lambda: _xmark(0x220, "0x10/0x30"),
        ("The paragraph on setting a mark in this chapter gives the formula; apply it bit by bit.",
         "new = (old AND NOT M) XOR V: (0x220 AND NOT 0x30) XOR 0x10. Which bits does NOT 0x30 clear?"),
        traps={"560": "That is 0x220 XOR 0x10: the mask 0x30 clears bits first."}),
    "02-xmark-full": Exercise(
        lambda: _xmark(0x250, "0x100/0xffffffff"),
        ("The same formula as in exercise 1, with a mask that covers every bit.",
         "(0x250 AND NOT 0xffffffff) XOR 0x100: what is left of 0x250 after the AND?"),
        traps={"848": "That is 0x250 OR 0x100: a mask of 0xffffffff clears every bit before the XOR."}),
    "03-members": Exercise(
        lambda: len(_capture(DEMO).parse("node/ipset-list.txt").members),
        ("The members are listed one a line.",
         "Count the lines under `Members:` (or the rows of the members table).")),
    "03-walk-egress": Exercise(
        lambda: ending(_sent(DEMO, "productpage-v1", "93.184.216.34", 443)),
        ("Go through the node's marking rules (mangle ztunnel-PREROUTING) from the top with this packet's "
         "source, protocol and device; which of them look at the destination?",
         "mangle PRE-15 marks it 0x100 whatever its destination, and ip rule 101 sends every 0x100 packet to "
         "table 101, whose default route goes into the tunnel istioout.",
         "Out of the tunnel, in ztunnel's pod, the packet arrives on pistioout: the TPROXY rule for pistioout "
         'names the port. Answer "ztunnel PORT".'),
        "ending",
        {"eth0": "The destination is outside the cluster, but which rule marks productpage's TCP, and where does "
                 "that mark send it?"}),
    "04-syn-mark": Exercise(
        lambda: _mark_out_of_set("10.244.2.2", REVIEWS_VIP, 9080),
        ("Go through ztunnel-PREROUTING from the top (the table under \"Every rule, in order\") with this SYN: "
         "its source, protocol and device.",
         "Rules 1-14 look at tunnels, UDP, connmarks and ztunnel's veth. PRE-15 needs the source in the set: is "
         "10.244.2.2 still there?"),
        traps={"256": "PRE-15 marks TCP whose source is in the set; this exercise removed ratings from it."}),
    "04-reply-mark": Exercise(
        lambda: _reply_mark(_sent(DEMO, "ztunnel", "10.244.2.2", 9080, sport=41000, mark=0x4D2, reply=True)),
        ("Two packets: first find the mark of ztunnel's SYN and what ztunnel-FORWARD saves of it, then go "
         "through ztunnel-PREROUTING with the SYN-ACK.",
         "The SYN comes in by ztunnel's veth from ztunnel's own address: PRE-12 gives it 0x220, and FWD-1 saves "
         "connmark 0x220. Which rule reads that connmark, before PRE-15 is reached?"),
        traps={"256": "ratings is in the set and the SYN-ACK is TCP, but does the chain get as far as PRE-15?"}),
    "04-walk-dns": Exercise(
        lambda: decision(_sent(DEMO, "productpage-v1", DNS_POD, 53, proto="udp")),
        ("Go through the node's ztunnel-PREROUTING from the top with a UDP packet from productpage's veth, "
         "then read `ip rule` from priority 0 with the mark it got.",
         "mangle PRE-13 marks every UDP packet that got that far 0x220, and PRE-14 returns. Which ip rule "
         "matches bit 0x200? If its action is `goto`, it is still the deciding rule.",
         "ip rule 100 (fwmark 0x200/0x200) jumps to 32766, which looks up main: the query leaves by eth0 and "
         'never meets ztunnel: "ip rule 100 (goto 32766) → table main". Answer "ip rule 100, table main".'),
        "decision",
        {"101 101": "Which rule gives a packet 0x100, and does it match UDP?",
         "103 100": "Table 100 has no route for 10.244.0.2, and the query is marked before the rules are read: "
                    "which mark does UDP get?",
         "32766 main": "The lookup does end in main by ip rule 32766, but the book counts the rule that matched "
                       "the packet and sent it there with its goto."}),
    "05-outer-device": Exercise(
        lambda: host_from_capture(_capture(DEMO), "node").route_get("10.244.2.10", mark=0x100)["dev"],
        ("The outer packet goes to 10.244.2.10, ztunnel's address, and still carries mark 0x100.",
         "Table 101 has a default route and a /32 for 10.244.2.10: the longest prefix wins.")),
    "05-walk-pod-ip": Exercise(
        lambda: decision(_sent(DEMO, "productpage-v1", "10.244.2.5")),
        ("First the mark: go through ztunnel-PREROUTING with productpage's SYN (chapter 4). Then read `ip rule` "
         "from priority 0 with that mark.",
         "The packet is marked 0x100. Go down `ip rule` from priority 0: which rule is the first whose "
         "fwmark/mask matches, and does its table have a route for 10.244.2.5?",
         'ip rule 101 matches 0x100, and table 101 has a default route. Answer "ip rule 101, table 101".'),
        "decision",
        {"103 100": "Table 100 does have a /32 route for 10.244.2.5, but the kernel stops at the first rule whose "
                    "table has a route: is ip rule 103 ever reached?",
         "32766 main": "main has a route for 10.244.2.5 by vethreviewsv2, but which rules come before 32766?"}),
    "05-walk-no-rule-100": Exercise(
        lambda: decision(_zt_synack("10.244.2.3", without="node-ip-rule-100"), iif="istioout"),
        ("Without ip rule 100, which of the node's rules are left, and which of them match mark 0x200?",
         "0x200 has neither bit 0x100 nor bit 0x40: ip rules 101 and 102 do not match. The next rule matches "
         "every packet.",
         "ip rule 103 looks up table 100, which has a /32 route for 10.244.2.3 into istioin: the answer goes "
         'back into a tunnel to ztunnel, not to productpage. Answer "ip rule 103, table 100".'),
        "decision",
        {"100 main": "ip rule 100 is the one removed in this exercise.",
         "32766 main": "main would deliver it to productpage, but a rule before 32766 matches every packet."}),
    "06-vni-istioout": Exercise(
        lambda: _tunnel_vni("node", "istioout"),
        ("`ip -d link show istioout` prints the tunnel's details.",
         "Read `ip -d link show istioout`: the number after `geneve id`.")),
    "06-walk-ratings-vip": Exercise(
        lambda: devices(_sent(DEMO, "ratings-v1", REVIEWS_VIP), hosts=True),
        ("Start where the packet enters the node (the node's main table names each pod's veth), then follow "
         "the mark it gets to an ip rule and a table.",
         "The SYN is marked 0x100, and table 101's default route goes into istioout, a geneve tunnel: its outer "
         "UDP packet goes to 10.244.2.10. Which device leads there, on which device does it arrive in ztunnel's "
         "pod, and which device there is the tunnel's other end?",
         "node/vethratings, node/istioout, then the outer packet: node/veth6cc9a213 and ztunnel/eth0; the inner "
         "packet comes out of the geneve device of ztunnel's pod with VNI 1001."),
        "devices"),
    "07-rule-0x4d3": Exercise(
        lambda: _rule_for(0x4D3, "ztunnel"),
        ("Read the ztunnel pod's `ip rule`, not the node's.",
         "In the ztunnel pod, which ip rule selects fwmark 0x4d3/0xfff? Give its priority.")),
    "07-walk-details": Exercise(
        lambda: ending(_sent(DEMO, "world", "10.244.2.3", src=DETAILS)),
        ("Follow the SYN as the chapters do: the node's marking rules, then `ip rule` from priority 0, then the "
         "table's route; if it goes into a tunnel, ztunnel's own mangle rules.",
         "No marking rule matches (the source is not in the set, the device is eth0): ip rule 103 sends it to "
         "table 100, whose route for 10.244.2.3 goes into istioin. In ztunnel's pod, the tunnel's other end is "
         "pistioin.",
         "Read the TPROXY rules of ztunnel's mangle PREROUTING for `-i pistioin`: port 9080 is not 15008. "
         'Answer "ztunnel PORT".'),
        "ending",
        {"pod productpage-v1": "main would deliver it, but is ip rule 32766 the first rule that matches?",
         "ztunnel 15008": "15008 is the HBONE port; this SYN is plain TCP to port 9080."}),
    "08-walk-synack-ratings": Exercise(
        lambda: devices(_zt_synack("10.244.2.2"), hosts=True),
        ("Start in ztunnel's pod: read its `ip rule` with the socket mark 0x401, then the table it picks.",
         "Rule 20001 sends 0x401 to ztunnel's table 101, whose default route goes into pistioout: its outer "
         "packet goes to 10.244.2.1 by ztunnel's eth0 and arrives on the node by ztunnel's veth. Where does the "
         "node take the inner packet out of the tunnel?",
         "Out of istioout the packet is marked 0x200 (mangle PRE-3), so ip rule 100 (goto 32766) sends it to "
         "main: ztunnel/pistioout, ztunnel/eth0, node/veth6cc9a213, node/istioout, and which veth leads to "
         "ratings?"),
        "devices"),
    "09-inbound-table": Exercise(
        lambda: int(decision(_sent(DEMO, "world", "10.244.2.5", 15008, src=REMOTE_ZTUNNEL, sport=50000))[1]),
        ("Follow the SYN from the other node as the chapter did: the node's marking rules first, then `ip rule` "
         "from priority 0.",
         "The SYN from the other node gets no mark. Which ip rule matches a packet with no mark at all, and "
         "does its table have a route for 10.244.2.5?")),
    "09-walk-no-rule-100": Exercise(
        lambda: decision(_sent(DEMO, "ztunnel", "10.244.1.23", 15008, sport=43000, without="node-ip-rule-100")),
        ("Read the node's `ip rule` from priority 0 without ip rule 100, with the mark 0x220, and look at each "
         "table a matching rule names.",
         "ip rule 103 matches every packet. Does table 100 have a route that covers 10.244.1.23? When a table "
         "has none, the kernel goes on to the next rule, and the rule whose table has the route decides.",
         "Table 100 only holds /32 routes for this node's pods: the lookup falls through to ip rule 32766 and "
         "main (10.244.1.0/24 via 172.18.0.4). With ip rule 100 the route was the same, but ip rule 100 (goto "
         "32766) decided; now ip rule 32766 does."),
        "decision",
        {"103 100": "ip rule 103 is tried, but table 100 has no route for 10.244.1.23: the kernel goes on to the "
                    "next rule.",
         "103 main": "ip rule 103 looks up table 100 only; when table 100 has no route, the next rule decides.",
         "100 main": "ip rule 100 is the one removed in this exercise."}),
    "10-connmark": Exercise(
        lambda: _ctmark_of(_sent(DEMO, "ztunnel", "10.244.2.8", 9080, src=OUTSIDE_CLIENT, sport=45000, mark=0x4D2,
                                 transparent=True)),
        ("Find the SYN's mark in the node's ztunnel-PREROUTING first, then read ztunnel-FORWARD.",
         "The SYN comes in by ztunnel's veth from an address that is not ztunnel's: PRE-10 marks it 0x210. "
         "Which FORWARD rule saves it, and with which mask?")),
    "10-walk-reply-v3": Exercise(
        lambda: decision(_sent(DEMO, "ztunnel", "10.244.2.8", 9080, src=OUTSIDE_CLIENT, sport=45000, mark=0x4D2,
                               transparent=True, reply=True), iif="vethreviewsv3"),
        ("Two packets: find what ztunnel-FORWARD saved in the connection's mark when ztunnel's SYN passed, then "
         "go through ztunnel-PREROUTING with reviews-v3's SYN-ACK, then `ip rule`.",
         "The SYN had a borrowed source, so PRE-10 marked it 0x210 and FWD-2 saved connmark 0x210. mangle PRE-8 "
         "turns connmark 0x210 into mark 0x40 for a packet that does not come from ztunnel's veth, and PRE-9 "
         "returns. Which ip rule selects 0x40?",
         "ip rule 102 looks up table 102, whose default route goes to ztunnel (10.244.2.10, onlink). "
         'Answer "ip rule 102, table 102".'),
        "decision",
        {"101 101": "reviews-v3 is in the set, but does ztunnel-PREROUTING get as far as PRE-15 for this packet?",
         "100 main": "main would send it to eth0, toward 10.244.1.9, which never opened this connection: which "
                     "mark does the connection give the answer?",
         "32766 main": "main would send it to eth0, toward 10.244.1.9, which never opened this connection: which "
                       "mark does the connection give the answer?"}),
    "11-only-remote": Exercise(
        _breaks_only_remote,
        ("Look for a piece whose row changes in one outcome table and not in the other.",
         "Compare, piece by piece, the outcome table of the on-node connection with the one of the "
         "connection from another node. Give the piece's name as a string.")),
    "11-lost-without-0x4d3": Exercise(
        _first_lost_without_0x4d3,
        ("The packets that this rule marks arrive on ztunnel's eth0 for an address that is not ztunnel's.",
         "Remove the piece and compare where each packet of the on-node connection ends; give the "
         "number of the first packet that ends elsewhere.")),
    "11-walk-no-rule-103": Exercise(
        lambda: ending(_sent(DEMO, "world", "10.244.2.5", 15008, src=REMOTE_ZTUNNEL, sport=50000,
                             without="node-ip-rule-103")),
        ("Follow the SYN as in the walk across nodes: the node's marking rules, then `ip rule` from priority 0, "
         "now without ip rule 103.",
         "With no mark and no ip rule 103, the lookup reaches ip rule 32766: what does main say for 10.244.2.5?",
         "main's route `10.244.2.5 dev vethreviewsv2` delivers it straight into the pod, past ztunnel. "
         'Answer "pod NAME".'),
        "ending",
        {"ztunnel 15008": "That is where it ends with ip rule 103; this exercise removes it."}),
    "12-kebe-ztunnel": Exercise(
        _kebe_ztunnel,
        ("Table 101 of a node routes to its ztunnel.",
         "Table 101 of every node holds a /32 route to that node's ztunnel. Read the second capture's "
         "table 101.")),
    "12-kebe-mtu": Exercise(
        _kebe_mtu,
        ("`ip addr` prints each device's MTU.",
         "Read the istioout line of the second capture: the number after `mtu`.")),
    "13-onward-table": Exercise(
        lambda: host_from_capture(_capture(LAB), "ztunnel").route_get("10.244.2.7", mark=0x4D2).get("table", "main"),
        ("Read the lab ztunnel's `ip rule` from priority 0 with the mark 0x4d2.",
         "0x4d2 AND 0xfff is 0x4d2: compare it with the fwmarks of ip rules 20000-20003. If none matches, "
         "which rule comes next, and which table does it look up? Give the table's name or number as a string.")),
    "13-reset-piece": Exercise(
        _lab_reset_piece,
        ("A reset comes back at once; a time-out does not.",
         "Read the `result` column of the no-marks rows: all failures but one are time-outs. Give the "
         "piece's name.")),
    "14-far-table": Exercise(
        lambda: host_from_capture(_capture(WORKER), "node").route_get("10.244.1.23", src="10.244.2.10",
                                                                      iif="eth0").get("table", "main"),
        ("Follow the SYN on ambient-worker as on this node: its marking rules, then its `ip rule` from priority 0 "
         "(book.node(book.capture(\"kind-2022-ambient-worker\")) has its tables).",
         "The SYN carries no mark on ambient-worker: which rule matches every packet, and which table does it "
         "look up? Ask book.node(worker).route_get(...). Give the table as a string.")),
    "14-far-source": Exercise(
        _far_source,
        ("The far ztunnel logs each tunnel it serves.",
         "Read the `onward` field of the far ztunnel's tunnel lines: the address before the port, as a "
         "string.")),
    "15-return-mark": Exercise(
        _inpod_return_mark,
        ("In the in-pod design the connection's mark is restored in mangle OUTPUT.",
         "Look at packet 4 of the in-pod inbound walk: which rule changes its mark in mangle OUTPUT, and to "
         "what? Give the mark as a hex string.")),
    "15-probe-source": Exercise(
        _inpod_probe_source,
        ("The node rewrites the probe's source in nat POSTROUTING.",
         "Find the SNAT rule in the node's nat table (ISTIO_POSTRT): the address after --to-source, as a "
         "string.")),
    "15-walk-inpod-dns": Exercise(
        lambda: devices(_sent(INPOD, "productpage-v1", DNS_POD, 53, proto="udp"), hosts=True),
        ("In the in-pod design the rules are in productpage's own namespace: read its nat OUTPUT rules with a "
         "UDP packet in mind.",
         "The REDIRECT to 15001 says `-p tcp`: the query leaves the pod by its eth0 like any packet. Which "
         "device does it enter the node by, and which route of the node's main table covers 10.244.0.2?",
         "productpage-v1/eth0, the node's end of productpage's veth, and the device of the node's route "
         "`10.244.0.0/24 via 172.18.0.3`. Name the namespace of each eth0 (HOST/DEV)."),
        "devices",
        {"lo": "That is the path of productpage's TCP (REDIRECT to 15001); this is UDP."}),
}


# -- comparing answers ---------------------------------------------------------------------------------

_FILLER = {"a", "and", "at", "by", "delivered", "dev", "device", "ends", "in", "into", "is", "it", "its", "leaves",
           "listener", "node", "of", "on", "pod", "port", "socket", "the", "to", "via"}


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


def _text(given: Any) -> str:
    if isinstance(given, (list, tuple)):
        return " ".join(str(g) for g in given)
    return str(given)


def _qualified(given: Any) -> list[tuple[str, str]]:
    """Return a device list as (namespace, device) pairs from a list or a string with commas, arrows
    or spaces between the names; ``ztunnel/eth0`` and ``ztunnel:eth0`` are ``("ztunnel", "eth0")``,
    a bare name has namespace ``""``."""
    parts = re.split(r"\s*(?:->|→|=>|>|,|;|\|)\s*|\s+", _text(given).strip().lower())
    out = []
    for part in (p.strip("'\"[]()") for p in parts):
        if part:
            host, _, dev = part.rpartition("/") if "/" in part else part.rpartition(":")
            out.append((host, dev))
    return out


def _devices(given: Any) -> list[str]:
    """Return a device list's bare names (``ztunnel/eth0`` and ``ztunnel:eth0`` count as ``eth0``)."""
    return [dev for _, dev in _qualified(given)]


def _ambiguous(right: Any) -> set[str]:
    """Return the bare device names that stand for devices of more than one namespace in ``right``."""
    hosts: dict[str, set[str]] = {}
    for host, dev in _qualified(right):
        hosts.setdefault(dev, set()).add(host)
    return {dev for dev, where in hosts.items() if len(where) > 1}


def _same_device(given: tuple[str, str], right: tuple[str, str], ambiguous: set[str]) -> bool:
    """Return whether device ``given`` names device ``right``: the same name, and the same namespace
    when ``given`` names one (``productpage`` for ``productpage-v1`` too) or the name is ambiguous."""
    (host, dev), (right_host, right_dev) = given, right
    if dev != right_dev:
        return False
    if not host:
        return dev not in ambiguous or not right_host
    return host == right_host or right_host.startswith(f"{host}-")


def _decision(given: Any) -> list[str]:
    """Return [priority, table] from ``"ip rule 100, table main"``, ``(100, "main")`` or ``"100 main"``."""
    text = re.sub(r"\(?\s*goto\s+\d+\s*\)?", " ", _text(given).lower())  # "ip rule 100 (goto 32766)" is rule 100
    tokens = re.findall(r"0x[0-9a-f]+|\d+|main|local|default", text)
    return [str(int(t, 0)) if t[0].isdigit() else t for t in tokens]


def _ending(given: Any) -> list[str]:
    tokens = re.findall(r"[a-z0-9][a-z0-9.-]*", _text(given).lower())
    return [{"drop": "dropped", "rst": "reset"}.get(t, t) for t in tokens if t not in _FILLER]


def _key(kind: str, value: Any) -> str:
    """Return ``value`` in the normal form of answers of ``kind``, as text (the traps' keys)."""
    if kind == "devices":
        return " ".join(_devices(value))
    if kind == "decision":
        return " ".join(_decision(value))
    if kind == "ending":
        return " ".join(_ending(value))
    return str(_norm(value))


def _same(kind: str, given: Any, right: Any) -> bool:
    if kind == "devices":
        got, want, ambiguous = _qualified(given), _qualified(right), _ambiguous(right)
        return len(got) == len(want) and all(_same_device(g, w, ambiguous) for g, w in zip(got, want, strict=True))
    if kind == "ending":
        want, got = _ending(right), _ending(given)
        return got == want or (want[:1] == ["ztunnel"] and got == want[1:])  # "15001" for "ztunnel 15001"
    if kind == "value":
        return bool(_norm(given) == _norm(right))
    return _key(kind, given) == _key(kind, right)


def _progress(kind: str, given: Any, right: Any) -> str:
    """Return what a wrong answer already has right (empty if nothing can be said)."""
    if kind == "devices":
        got, want, ambiguous = _qualified(given), _qualified(right), _ambiguous(right)
        if len(got) == len(want) and [d for _, d in got] == [d for _, d in want]:
            unsaid = sorted({d for h, d in got if not h and d in ambiguous})
            if unsaid:
                return (f"The device names are right, but {', '.join(unsaid)} names devices of more than one "
                        "network namespace here: write each as NAMESPACE/DEVICE (node/eth0, ztunnel/eth0, a pod's name).")
            return "The device names are right, but a namespace is not: which host does each device belong to?"
        same = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if not _same_device(g, w, ambiguous)),
                    min(len(got), len(want)))
        if same == len(got) < len(want):
            return f"Your {same} devices are right, but the packet crosses more."
        if same == len(want) < len(got):
            return f"The packet stops after your first {same} devices."
        return f"Your first {same} devices are right." if same else "Your list starts with a device the packet does not cross first."
    if kind == "decision":
        got, want = _decision(given), [str(part) for part in right]
        if len(got) != 2:
            return FORMS["decision"]
        if got[0] == want[0]:
            return "The ip rule is right, the table is not."
        if got[1] == want[1]:
            return "The table is right, the ip rule is not."
    return ""


# -- the reader's side: answer, hint ----------------------------------------------------------------

_TRIES: dict[str, int] = {}


def solution(exercise: str) -> Any:
    """Return the right answer of ``exercise``, computed from the data (and the tracer)."""
    return EXERCISES[exercise].compute()


def hint(exercise: str, level: int = 1) -> str:
    """Return hint ``level`` (1 is the gentlest; the last one nearly gives the answer) of
    ``exercise``, with how many there are."""
    hints = EXERCISES[exercise].hints
    if not 1 <= level <= len(hints):
        raise ValueError(f"{exercise} has hints 1 to {len(hints)}")
    form = FORMS.get(EXERCISES[exercise].kind, "")
    tail = f" {form}" if form and level == len(hints) and "Answer" not in hints[-1] else ""
    return f"Hint {level} of {len(hints)}: {hints[level - 1]}{tail}"


def tries(exercise: str) -> int:
    """Return how many wrong answers to ``exercise`` :func:`answer` has seen in this session."""
    return _TRIES.get(exercise, 0)


def forget_tries(exercise: str | None = None) -> None:
    """Forget the wrong answers to ``exercise`` (or to every exercise): the next hint is the first."""
    if exercise is None:
        _TRIES.clear()
    else:
        _TRIES.pop(exercise, None)


def answer(exercise: str, given: Any) -> str:
    """Return "Correct." if ``given`` is the answer computed from the data, else "Not yet", what
    the answer already has right (or what an expected wrong answer overlooks) and a hint: the
    first wrong answer gets hint 1, the next one hint 2, and so on to the last.

    Numbers may be given as ints or as strings (``"0x250"`` or ``"592"``); device lists as lists or
    strings (commas, arrows or spaces between the names); decisions as ``"ip rule 101, table 101"``
    or ``(101, 101)`` (after a ``goto``, the goto rule: ``"ip rule 100 (goto 32766), table main"``
    is rule 100); endings as ``"ztunnel 15001"``, ``"pod reviews-v2"``, ``"eth0"``. Case does
    not matter. A device that several network namespaces have (``eth0``, ``lo``) needs its
    namespace when the path crosses more than one of them: ``"productpage-v1/eth0"``. ``None`` or
    ``...`` (no answer yet) gets the form of the answer and hint 1, and does not count as a try.
    """
    spec = EXERCISES[exercise]
    if given is None or given is Ellipsis:
        form = FORMS.get(spec.kind, "Give a number or a name.")
        return f"No answer yet: replace ... with yours. {form} Where to look: {hint(exercise, 1)}"
    right = solution(exercise)
    if _same(spec.kind, given, right):
        return "Correct."
    if spec.kind == "devices" and _devices(given) == _devices(right):  # only a namespace is missing or wrong
        return f"Not yet. {_progress(spec.kind, given, right)}"
    _TRIES[exercise] = tries(exercise) + 1
    level = min(tries(exercise), len(spec.hints))
    said = [spec.traps.get(_key(spec.kind, given), "") or _progress(spec.kind, given, right), hint(exercise, level)]
    if level < len(spec.hints):
        said.append(f'More: book.hint("{exercise}", {level + 1}).')
    return " ".join(["Not yet."] + [s for s in said if s])
