"""The tracer's prediction for one lab connection: the client's handshake with whoever answers
(ztunnel, when it captures the SYN) and ztunnel's onward handshake with the borrowed source,
each packet with the place it must reach for the connection to work."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from ambientlab.core.capture import load_capture
from ambientlab.core.constants import APP_PORT, BEHAVIOURS, DEMO, HBONE_PORT
from ambientlab.core.constants import WORKER as SECOND_CAPTURE
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.breaks import PIECES
from ambientlab.core.trace.demo import SECOND, WORLD, demo_network, two_node_network
from ambientlab.core.trace.network import Exit, Network, Socket, arrival
from ambientlab.core.trace.scenarios import Send, play, tcp


@dataclass(frozen=True)
class Connection:
    """One lab connection: who (host names as the tracer calls them, addresses) and how."""

    capture: str
    behaviour: str  # a key of ambientlab.core.constants.BEHAVIOURS
    client_host: str  # a pod name, or WORLD for the peer
    client: str
    server_host: str
    server: str
    sport: int
    onward_port: int  # the port ztunnel's onward socket got (any free port for a prediction)
    port: int = APP_PORT


@dataclass
class Prediction:
    """The hop table, each packet's end and intended end, and whether the connection works."""

    hops: pd.DataFrame
    ends: pd.DataFrame
    works: bool
    captured_by: int | None  # the ztunnel listener port that took the SYN, if any

    def until_lost(self) -> pd.DataFrame:
        """Return the hops of the packets up to the first one that does not end where it must
        (what really happens: a lost packet is sent again, the later ones never are)."""
        lost = self.ends.index[~self.ends["ok"]]
        if not len(lost):
            return self.hops
        keep = list(self.ends.index[: list(self.ends.index).index(lost[0]) + 1])
        return self.hops[self.hops["packet"].isin(keep)]


def _arrival(host: str) -> str:
    return arrival(Exit("world", WORLD) if host == WORLD else Exit("pod", host))


def _listeners(net: Network, machine: str, behaviour: str) -> None:
    """Give ztunnel ``machine`` the stand-in's three transparent listeners, marked as ``behaviour`` says."""
    for port, mark in BEHAVIOURS[behaviour]["listeners"].items():
        net.machines[machine].sockets.append(
            Socket(f"ztunnel {port}", (ipv4.to_int("127.0.0.1"), port), transparent=True, mark=mark))


def network_for(conn: Connection, pieces: str | Sequence[str] | None = None) -> Network:
    """Return the network the tracer plays lab connection ``conn`` on: the node of the capture
    the lab was built from, with ztunnel's three listeners (marked as ``conn``'s behaviour says)
    and ``pieces`` (keys of :data:`~ambientlab.core.trace.breaks.PIECES`) removed."""
    net = demo_network(load_capture(conn.capture))
    _listeners(net, "ztunnel", conn.behaviour)
    for piece in [pieces] if isinstance(pieces, str) else pieces or ():
        PIECES[piece].remove(net)
    return net


def predict(conn: Connection, pieces: str | Sequence[str] | None = None) -> Prediction:
    """Return the tracer's prediction for ``conn`` with ``pieces`` removed (None: intact).

    The connection works when every packet ends where it must: the SYN at a ztunnel listener
    (or at the server, if nothing captures it), replies at the client, the client's ACK at
    ztunnel's accepted socket, the onward packets at the server and their replies at ztunnel's
    onward socket. Computed once per (connection, pieces) in a process; each caller gets its
    own copy.
    """
    removed = (pieces,) if isinstance(pieces, str) else tuple(pieces or ())
    return copy.deepcopy(_predict_once(conn, removed))


@functools.lru_cache(maxsize=128)
def _predict_once(conn: Connection, pieces: tuple[str, ...]) -> Prediction:
    net = network_for(conn, pieces)
    ip = ipv4.to_int
    client, server = ip(conn.client), ip(conn.server)
    marks = BEHAVIOURS[conn.behaviour]
    first = Send("1 SYN", conn.client_host, tcp(client, conn.sport, server, conn.port, "S"))
    sends: list[tuple[Send, str]] = []
    hops = play(net, [first])
    ends = str(hops["matched"].iloc[-1])
    listener = re.fullmatch(r"socket ztunnel (\d+)", ends)
    captured = int(listener.group(1)) if listener else None
    if captured is not None:
        lmark, omark = marks["listeners"][captured], marks["onward"]
        zt = net.machines["ztunnel"]
        zt.sockets += [Socket("accepted", (server, conn.port), (client, conn.sport), transparent=True, mark=lmark),
                       Socket("onward", (client, conn.onward_port), (server, conn.port), transparent=True, mark=omark)]
        sends = [
            (Send("2 SYN-ACK", "ztunnel", tcp(server, conn.port, client, conn.sport, "SA"), lmark, True),
             _arrival(conn.client_host)),
            (Send("3 ACK", conn.client_host, tcp(client, conn.sport, server, conn.port, "A")), "socket accepted"),
            (Send("4 onward SYN", "ztunnel", tcp(client, conn.onward_port, server, conn.port, "S"), omark, True),
             _arrival(conn.server_host)),
            (Send("5 onward SYN-ACK", conn.server_host, tcp(server, conn.port, client, conn.onward_port, "SA")),
             "socket onward"),
            (Send("6 onward ACK", "ztunnel", tcp(client, conn.onward_port, server, conn.port, "A"), omark, True),
             _arrival(conn.server_host)),
        ]
    elif ends == _arrival(conn.server_host):  # not captured: the client talks to the server itself
        sends = [(Send("2 SYN-ACK", conn.server_host, tcp(server, conn.port, client, conn.sport, "SA")),
                  _arrival(conn.client_host)),
                 (Send("3 ACK", conn.client_host, tcp(client, conn.sport, server, conn.port, "A")),
                  _arrival(conn.server_host))]
    intended = {"1 SYN": "socket ztunnel …" if captured else _arrival(conn.server_host)}
    return _judge(net, hops, sends, intended, captured)


def _judge(net: Network, hops: pd.DataFrame, sends: list[tuple[Send, str]], intended: dict[str, str],
           captured: int | None) -> Prediction:
    """Play ``sends`` after the first packet's ``hops``; return the prediction with each
    packet's end next to where it must end (``intended`` for the first packet)."""
    rest = play(net, [s for s, _ in sends]) if sends else hops.iloc[0:0]
    frame = pd.concat([hops, rest], ignore_index=True).rename_axis("hop")
    last = frame.groupby("packet", sort=False).tail(1).set_index("packet")
    intended = {**intended, **{s.label: want for s, want in sends}}
    table = pd.DataFrame({"ends": last["matched"], "host": last["host"]})
    table["must reach"] = [intended[p] for p in table.index]
    table["ok"] = [(e == w or (w == "socket ztunnel …" and captured is not None)) for e, w in
                   zip(table["ends"], table["must reach"], strict=True)]
    works = bool(table["ok"].all()) and (captured is not None or bool(sends))
    return Prediction(frame, table, works, captured)


@dataclass(frozen=True)
class HboneConnection:
    """One connection across the two nodes of a two-node lab: the client pod on the first node,
    the server pod on the second, the ports each ztunnel's sockets got."""

    behaviour: str
    client_host: str  # a pod of the first node (tracer name)
    client: str
    server_host: str  # a pod of the second node (tracer name, starting with "worker-")
    server: str
    sport: int
    tunnel_port: int  # the client-side ztunnel's HBONE socket (from its own address)
    onward_port: int  # the server-side ztunnel's onward socket (borrowing the client ztunnel's address)
    port: int = APP_PORT
    captures: tuple[str, str] = (DEMO, SECOND_CAPTURE)


def hbone_network(conn: HboneConnection) -> Network:
    """Return the two nodes' network with both ztunnels' listeners, marked as the behaviour says."""
    net = two_node_network(load_capture(conn.captures[0]), load_capture(conn.captures[1]))
    for machine in ("ztunnel", f"{SECOND}ztunnel"):
        _listeners(net, machine, conn.behaviour)
    return net


def ztunnel_address(net: Network, machine: str) -> int:
    """Return the address of ztunnel ``machine``'s eth0."""
    return net.machines[machine].host.devices["eth0"].addrs[0].local


def predict_hbone(conn: HboneConnection, alter: Callable[[Network], None] | None = None) -> Prediction:
    """Return the tracer's prediction for an HBONE connection across the two nodes (``alter``,
    if given, changes the network first: a piece removed, for example).

    Three handshakes, each packet with where it must end: the client's, captured by the first
    ztunnel on 15001; that ztunnel's HBONE connection from its own address to the server pod's
    port 15008, captured on the second node by its ztunnel's 15008 listener; and the second
    ztunnel's onward connection to the server with the first ztunnel's address (borrowed).
    """
    net = hbone_network(conn)
    if alter is not None:
        alter(net)
    ip = ipv4.to_int
    client, server = ip(conn.client), ip(conn.server)
    near, far = "ztunnel", f"{SECOND}ztunnel"
    z1 = ztunnel_address(net, near)
    marks = BEHAVIOURS[conn.behaviour]
    lmark, hmark, omark = marks["listeners"][15001], marks["listeners"][HBONE_PORT], marks["onward"]
    hops = play(net, [Send("1 SYN", conn.client_host, tcp(client, conn.sport, server, conn.port, "S"))])
    ends = str(hops["matched"].iloc[-1])
    captured = 15001 if ends == "socket ztunnel 15001" else None
    to_client, to_server = _arrival(conn.client_host), _arrival(conn.server_host)
    intended = {"1 SYN": "socket ztunnel 15001"}
    sends: list[tuple[Send, str]] = []
    if captured:
        net.machines[near].sockets += [
            Socket("accepted", (server, conn.port), (client, conn.sport), transparent=True, mark=lmark),
            Socket("HBONE", (z1, conn.tunnel_port), (server, HBONE_PORT))]
        first = [
            (Send("2 SYN-ACK", near, tcp(server, conn.port, client, conn.sport, "SA"), lmark, True), to_client),
            (Send("3 ACK", conn.client_host, tcp(client, conn.sport, server, conn.port, "A")), "socket accepted"),
            (Send("4 HBONE SYN", near, tcp(z1, conn.tunnel_port, server, HBONE_PORT, "S")),
             f"socket ztunnel {HBONE_PORT}"),
        ]
        hops = pd.concat([hops, play(net, [s for s, _ in first])], ignore_index=True)
        intended |= {s.label: want for s, want in first}
        net.machines[far].sockets += [  # accepted by the far ztunnel's listener, which dials the server
            Socket("HBONE accepted", (server, HBONE_PORT), (z1, conn.tunnel_port), transparent=True, mark=hmark),
            Socket("onward", (z1, conn.onward_port), (server, conn.port), transparent=True, mark=omark)]
        sends = [
            (Send("5 HBONE SYN-ACK", far, tcp(server, HBONE_PORT, z1, conn.tunnel_port, "SA"), hmark, True),
             "socket HBONE"),
            (Send("6 HBONE ACK", near, tcp(z1, conn.tunnel_port, server, HBONE_PORT, "A")), "socket HBONE accepted"),
            (Send("7 onward SYN", far, tcp(z1, conn.onward_port, server, conn.port, "S"), omark, True), to_server),
            (Send("8 onward SYN-ACK", conn.server_host, tcp(server, conn.port, z1, conn.onward_port, "SA")),
             "socket onward"),
            (Send("9 onward ACK", far, tcp(z1, conn.onward_port, server, conn.port, "A"), omark, True), to_server),
        ]
    return _judge(net, hops, sends, intended, captured)
