"""The tracer's prediction for one lab connection: the client's handshake with whoever answers
(ztunnel, when it captures the SYN) and ztunnel's onward handshake with the borrowed source,
each packet with the place it must reach for the connection to work."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ambientlab.capture import load_capture
from ambientlab.lab.standin import BEHAVIOURS
from ambientlab.trace import ipv4
from ambientlab.trace.breaks import PIECES
from ambientlab.trace.demo import WORLD, demo_network
from ambientlab.trace.network import Exit, Network, Socket, arrival
from ambientlab.trace.scenarios import Send, play, tcp

APP_PORT = 9080


@dataclass(frozen=True)
class Connection:
    """One lab connection: who (host names as the tracer calls them, addresses) and how."""

    capture: str
    behaviour: str  # a key of ambientlab.lab.standin.BEHAVIOURS
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


def network_for(conn: Connection, pieces: str | Sequence[str] | None = None) -> Network:
    """Return the capture's network with ztunnel's three listeners (marked as the behaviour
    says) and ``pieces`` (keys of :data:`~ambientlab.trace.breaks.PIECES`) removed."""
    net = demo_network(load_capture(conn.capture))
    for port, mark in BEHAVIOURS[conn.behaviour]["listeners"].items():
        net.machines["ztunnel"].sockets.append(
            Socket(f"ztunnel {port}", (ipv4.to_int("127.0.0.1"), port), transparent=True, mark=mark))
    for piece in [pieces] if isinstance(pieces, str) else pieces or ():
        PIECES[piece].remove(net)
    return net


def predict(conn: Connection, pieces: str | Sequence[str] | None = None) -> Prediction:
    """Return the tracer's prediction for ``conn`` with ``pieces`` removed (None: intact).

    The connection works when every packet ends where it must: the SYN at a ztunnel listener
    (or at the server, if nothing captures it), replies at the client, the client's ACK at
    ztunnel's accepted socket, the onward packets at the server and their replies at ztunnel's
    onward socket.
    """
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
    rest = play(net, [s for s, _ in sends]) if sends else hops.iloc[0:0]
    frame = pd.concat([hops, rest], ignore_index=True).rename_axis("hop")
    last = frame.groupby("packet", sort=False).tail(1).set_index("packet")
    intended = {"1 SYN": "socket ztunnel …" if captured else _arrival(conn.server_host)}
    intended.update({s.label: want for s, want in sends})
    table = pd.DataFrame({"ends": last["matched"], "host": last["host"]})
    table["must reach"] = [intended[p] for p in table.index]
    table["ok"] = [(e == w or (w == "socket ztunnel …" and captured is not None)) for e, w in
                   zip(table["ends"], table["must reach"], strict=True)]
    works = bool(table["ok"].all()) and (captured is not None or bool(sends))
    return Prediction(frame, table, works, captured)
