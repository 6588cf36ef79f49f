"""One packet of your own, walked by the tracer: the exercises' "predict the walk" tasks.

:func:`send` plays one packet (a SYN, a DNS query…) on a capture's node, as the book's named
walks do, and returns its hop table. Three short readings of a hop table answer the questions
a reader predicts: :func:`devices` (the devices the packet crosses, in order), :func:`decision`
(the ip rule and the routing table that decide on one host: after a ``goto``, the goto rule) and :func:`ending` (where it ends).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ambientlab.core.capture import Capture
from ambientlab.core.constants import BEHAVIOURS
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.breaks import PIECES, remove_ip_rule
from ambientlab.core.trace.demo import WORLD, demo_network, pod_addresses
from ambientlab.core.trace.inpod import inpod_network, redirect_network
from ambientlab.core.trace.netfilter import Packet
from ambientlab.core.trace.network import Network, Socket
from ambientlab.core.trace.scenarios import Send, play
from ambientlab.core.trace.walks import IN_POD, IN_POD_REDIRECT, NODE_LEVEL, unfit_for

PROTOCOLS = {"tcp": 6, "udp": 17}
_IP_RULE = re.compile(r"([a-z0-9-]+)-ip-rule-(\d+)")


def design_network(capture: Capture) -> tuple[str, Network]:
    """Return the design of ``capture`` (``IN_POD``, ``IN_POD_REDIRECT`` or ``NODE_LEVEL``, as its
    folders and rules say) and the tracer's network of it."""
    if unfit_for(capture, IN_POD) is None:
        return IN_POD, inpod_network(capture)
    if unfit_for(capture, IN_POD_REDIRECT) is None:
        return IN_POD_REDIRECT, redirect_network(capture)
    return NODE_LEVEL, demo_network(capture)


def _network(capture: Capture, without: Sequence[str]) -> Network:
    """Return the tracer's network of ``capture`` (:func:`design_network`), with the 2022 ztunnel's
    three listeners (on a 2022 capture) and the pieces ``without`` removed."""
    design, net = design_network(capture)
    if design == NODE_LEVEL:
        for port, mark in BEHAVIOURS["marks-2022"]["listeners"].items():
            net.machines["ztunnel"].sockets.append(
                Socket(f"ztunnel {port}", (ipv4.to_int("127.0.0.1"), port), transparent=True, mark=mark))
    for piece in without:
        rule = _IP_RULE.fullmatch(piece)
        if piece.startswith("ipset:"):
            take_out_of_ipsets(net, capture, piece.removeprefix("ipset:"))
        elif piece in PIECES:
            PIECES[piece].remove(net)
        elif rule and rule.group(1) in net.machines:
            remove_ip_rule(net, rule.group(1), int(rule.group(2)))
        else:
            raise KeyError(f"unknown piece {piece!r}: a key of book.PIECES, MACHINE-ip-rule-PRIORITY or ipset:POD "
                           f"(machines: {', '.join(net.machines)})")
    return net


def take_out_of_ipsets(net: Network, capture: Capture, pod: str) -> None:
    """Remove pod ``pod``'s address (by short name) from every ipset of ``net``, as if its
    namespace had lost the ambient label. A KeyError names the pods there are."""
    by_name = pod_addresses(capture)
    if pod not in by_name:
        raise KeyError(f"ipset:{pod}: no pod {pod!r} in {capture.name} ({', '.join(by_name)})")
    for machine in net.machines.values():
        for members in (machine.rules.ipsets.values() if machine.rules is not None else ()):
            members.discard(ipv4.to_int(by_name[pod]))


def send(capture: Capture, origin: str, dst: str, dport: int = 9080, *, src: str | None = None,
         sport: int = 40000, proto: str = "tcp", flags: str = "S", mark: int = 0, transparent: bool = False,
         without: str | Sequence[str] = (), reply: bool = False) -> pd.DataFrame:
    """Return the hop table (the columns of :func:`walk`) of one packet to ``dst``:``dport``,
    walked by the tracer on ``capture``'s node.

    ``origin`` is who sends it: a pod by its short name (``"productpage-v1"``; its address is
    the source unless ``src`` says otherwise), ``"world"`` (the rest of the cluster, arriving on
    the node's ``eth0``; give ``src``), or a host of the node (``"ztunnel"``, ``"node"``) whose
    socket sends it (from ``src``, or the address its route picks) with socket mark ``mark`` (``transparent``: it may use an address that is
    not its own, as ``original_src`` does). ``proto`` is ``"tcp"`` or ``"udp"``; ``flags`` the
    TCP flags (``"S"`` for a SYN). ``without`` names pieces removed first: keys of
    :data:`PIECES`, ``"node-ip-rule-100"`` (any host's ip rule, by priority), or
    ``"ipset:ratings-v1"`` (that pod's address taken out of every ipset). On a 2022
    capture, ztunnel listens on 15001, 15006 and 15008 with the Sept 2022 socket marks.

    ``reply``: if the packet arrives in a pod, the pod answers it (packet 2, a SYN-ACK to a SYN),
    through the connection the first packet left in conntrack; a host's sending socket gets it.
    """
    pieces = [without] if isinstance(without, str) else list(without)
    net = _network(capture, pieces)
    if origin == "world":
        origin = WORLD
    by_name = pod_addresses(capture)
    if src is None and origin in by_name:  # a pod sends from its own address, whether its namespace is modelled or not
        src = by_name[origin]
    elif src is None and origin not in net.machines:
        raise KeyError(f"give src= for {origin!r}: only a pod's address is known by its name ({', '.join(by_name)})")
    packet = Packet(src=ipv4.to_int(src) if src else 0, dst=ipv4.to_int(dst), proto=PROTOCOLS[proto], sport=sport, dport=dport,
                    flags=flags if proto == "tcp" else "")
    who = "the rest of the cluster" if origin == WORLD else origin
    label = f"1 {proto.upper()} {who}{f' ({src})' if src else ''} -> {dst}:{dport}"
    first = play(net, [Send(label, origin, packet, mark, transparent)])
    first.attrs.update(capture=capture.name, walk="", without=",".join(pieces))
    end = ending(first)
    if not reply or not end.startswith("pod "):
        return first
    if origin in net.machines:
        net.machines[origin].sockets.append(Socket(f"{origin} (the sending socket)", (packet.src, sport), (packet.dst, dport),
                                                   transparent=transparent, mark=mark))
    pod = end.removeprefix("pod ")
    answer = Packet(src=packet.dst, dst=packet.src, proto=packet.proto, sport=dport, dport=sport,
                    flags="SA" if flags == "S" else flags if proto == "tcp" else "")
    second = play(net, [Send(f"2 {'SYN-ACK' if flags == 'S' else 'reply'} {pod} -> {ipv4.to_text(packet.src)}:{sport}",
                             pod, answer)])
    both = pd.concat([first, second], ignore_index=True).rename_axis("hop")
    both.attrs.update(first.attrs)
    return both


def devices(frame: pd.DataFrame, hosts: bool = False) -> list[str]:
    """Return the devices a packet of hop table ``frame`` crosses, in order: the device it enters
    a host by, a tunnel it is sent into, the device the tunnel's outer packet leaves by, the
    device it comes out of a tunnel on, and the last device it leaves by (a pod's veth, ``eth0``).

    With ``hosts``, each name is qualified with the network namespace it belongs to
    (``"productpage-v1/eth0"``, ``"node/vethproductpage"``, ``"ztunnel/pistioout"``): several
    namespaces have an ``eth0`` and a ``lo``."""
    out: list[str] = []
    for host, hook, where in zip(frame["host"], frame["hook"], frame["where"], strict=True):
        text = str(where)
        if hook == "wire" and text.startswith("into "):  # sent by a pod or the rest of the cluster
            out.append(text.removeprefix("into "))
        elif hook == "wire" and text.startswith("veth "):  # veth DEV -> HOST/DEV
            out += [f"{host}/{text.split()[1]}", text.split(" -> ", 1)[1]]
        elif hook in ("wire", "deliver") and text.startswith("tunnel "):
            out.append(f"{host}/{text.split()[1]}")
        elif hook == "wire":  # the last device: a pod's veth, eth0, lo
            out.append(f"{host}/{text}")
    if not hosts:
        out = [d.rsplit("/", 1)[-1] for d in out]
    return [d for i, d in enumerate(out) if i == 0 or d != out[i - 1]]


def ending(frame: pd.DataFrame) -> str:
    """Return where the last packet of hop table ``frame`` ends, in short: ``"ztunnel 15001"``
    (a listening socket, by its port), ``"pod reviews-v2"``, ``"eth0"`` (it leaves the node),
    ``"reset"`` (no socket takes it), ``"dropped"``, or the routing error."""
    last = frame.iloc[-1]
    text = str(last["matched"])
    if last["hook"] == "deliver" and text.startswith("socket "):
        return re.sub(r"\s*\(.*\)$", "", text.removeprefix("socket "))
    if text.startswith("arrives in pod "):
        return "pod " + text.removeprefix("arrives in pod ")
    if text.startswith("leaves for "):
        return str(last["where"])
    if text.startswith("no socket"):
        return "reset"
    if last["where"] == "error":
        return text
    return "dropped"


class Decision(tuple):  # type: ignore[type-arg]
    """The ip rule and the table that decide a route: a pair ``(priority, table)`` that unpacks
    and compares as a tuple, and prints in the book's wording. The deciding rule is the rule
    whose action sends the packet to the table: after a ``goto`` it is the goto rule
    (``ip rule 100 (goto 32766) → table main``); ``goto`` holds the rule where the lookup went on."""

    goto: int | None

    def __new__(cls, rule: int, table: str, goto: int | None = None) -> Decision:
        """Return the pair (rule, table), with the goto target kept aside."""
        made = super().__new__(cls, (rule, table))
        made.goto = goto
        return made

    def __repr__(self) -> str:
        rule, table = self
        via = f" (goto {self.goto})" if self.goto is not None else ""
        return f"ip rule {rule}{via} → table {table}"

    __str__ = __repr__


def decision(found: pd.DataFrame | dict[str, Any], host: str = "node", iif: str | None = None) -> Decision:
    """Return the :class:`Decision` (ip rule priority, table) of the first routing decision on
    ``host`` (for a packet that came in on ``iif``, if given) in hop table ``found``, or of an
    answer of ``Host.route_get``. The deciding rule is the first one that matched the packet and
    sent it to a table: a ``goto`` rule counts (``ip rule 100 (goto 32766) → table main``); a rule
    whose table had no route does not (the lookup went on to the next rule, which decides)."""
    if isinstance(found, dict):
        via = found.get("_via")
        rule = via or found["_rule"]
        goto = int(found["_rule"].priority) if via else None
        return Decision(int(rule.priority), ipv4.table_name(found["_route"].table), goto)
    rows = found[(found["host"] == host) & (found["hook"] == "routing")]
    if iif is not None:
        rows = rows[rows["iif"] == iif]
    rules = rows[rows["where"] == "ip rule"]["matched"].astype(str)
    tables = rows[rows["where"].str.startswith("table ")]["where"]
    if rules.empty or tables.empty:
        raise ValueError(f"no routing decision on {host!r}{f' for packets from {iif}' if iif else ''} in this hop table")
    first = rules.iloc[0]
    jump = re.search(r"\bgoto (\d+)", first)
    return Decision(int(first.split(":")[0]), str(tables.iloc[0]).removeprefix("table "),
                    int(jump.group(1)) if jump else None)
