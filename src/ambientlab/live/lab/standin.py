"""The programs that run inside the lab's namespaces (standard library only, but for HBONE).

- ``ztunnel``: a stand-in for ztunnel's redirection endpoints. Transparent listeners on
  127.0.0.1:15001 (outbound), 15006 (inbound plaintext) and 15008 (inbound HBONE port, plain
  TCP here) accept what TPROXY hands them, log the peer and the original destination (the
  socket's own address: TPROXY does not rewrite it), and pass the bytes on to that destination
  with the peer's address as source (``IP_TRANSPARENT``). Two behaviours: ``no-marks`` (the
  2023 Rust ztunnel: no socket marks) and ``marks-2022`` (the Sept 2022 Envoy build: listeners
  marked 0x401 for 15001 and 0x402 for 15006/15008, onward connections marked 0x4d2).
- With ``--hbone CONFIG`` (a two-node lab) the stand-in also speaks HBONE
  (:mod:`ambientlab.live.lab.hbone`): a connection captured on 15001 for a pod of the other node is
  carried as ``CONNECT pod:port`` over mutual TLS from ztunnel's own address to the pod's port
  15008, where the other node's stand-in checks the certificate and the target, dials the pod
  with the peer's address and relays. One ``tunnel`` line is logged per tunnelled connection.
- ``app``: the app pods' server: greets each client with who it is and who it sees, then
  echoes.
- ``client``: connects (optionally from a fixed port), prints the greeting or the error.

Each server writes one JSON line per event to stdout, the first being ``{"event": "ready"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
from typing import Any

from ambientlab.core.constants import BEHAVIOURS, INPOD_MARKS, LISTENERS
from ambientlab.live.lab.sockets import IP_TRANSPARENT, SO_MARK, addr_text, dial, error_text, original_dst

_lock = threading.Lock()


def log(**event: Any) -> None:
    """Write one event as a JSON line (thread-safe)."""
    with _lock:
        print(json.dumps(event, sort_keys=True), flush=True)


def _pipe(src: socket.socket, dst: socket.socket, counter: list[int]) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
            counter[0] += len(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(conn: socket.socket, port: int, onward_mark: int, timeout: float, hbone: Any = None,
           redirected: bool = False, own_address: bool = False) -> None:
    peer = conn.getpeername()
    dst = original_dst(conn) if redirected else conn.getsockname()
    if hbone is not None and (port == 15008 or hbone.remote(dst[0])):
        (hbone.inbound if port == 15008 else hbone.outbound)(conn, peer, dst, onward_mark, timeout)
        return
    event: dict[str, Any] = {"event": "accepted", "listener": port, "role": LISTENERS[port],
                             "peer": addr_text(peer), "original_dst": addr_text(dst)}
    try:
        # the borrowed source: the client's own address (an outbound client is this pod: its own address)
        out = dial("0.0.0.0" if own_address else peer[0], dst, onward_mark, timeout)
    except OSError as err:
        log(**event, onward=None, error=error_text(err))
        conn.close()
        return
    log(**event, onward=f"{addr_text(out.getsockname())} -> {addr_text(out.getpeername())}", onward_mark=hex(onward_mark))
    up, down = [0], [0]
    back = threading.Thread(target=_pipe, args=(out, conn, down), daemon=True)
    back.start()
    _pipe(conn, out, up)
    back.join()
    log(event="closed", listener=port, peer=addr_text(peer), original_dst=addr_text(dst), bytes_up=up[0], bytes_down=down[0])
    out.close()
    conn.close()


def serve_ztunnel(behaviour: str, timeout: float = 3.0, hbone_config: str | None = None) -> None:
    """Run the stand-in ztunnel's three transparent listeners until killed (speaking HBONE
    with the configuration file ``hbone_config``, if given). With behaviour ``inpod`` the
    listeners are on 0.0.0.0 inside a pod's namespace and 15001 takes REDIRECTed connections; with
    ``inpod-redirect`` (today's rules) 15006 takes REDIRECTed ones too, and reads their original
    destination with SO_ORIGINAL_DST."""
    inpod = behaviour in ("inpod", "inpod-redirect")
    redirected_ports = {15001} if behaviour == "inpod" else {15001, 15006} if inpod else set()
    marks = INPOD_MARKS if inpod else BEHAVIOURS[behaviour]
    hbone = None
    if hbone_config:
        from ambientlab.live.lab.tunnel import Hbone

        hbone = Hbone.from_file(hbone_config, log)
    servers = []
    for port, mark in marks["listeners"].items():
        s = socket.socket()
        s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mark:
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        s.bind(("0.0.0.0" if inpod else "127.0.0.1", port))
        s.listen(64)
        servers.append((port, s))
    log(event="ready", behaviour=behaviour, listeners={str(p): hex(m) for p, m in marks["listeners"].items()},
        onward_mark=hex(marks["onward"]), hbone=hbone.node if hbone else None)

    def accept(port: int, s: socket.socket) -> None:
        while True:
            conn, _ = s.accept()
            threading.Thread(target=_relay, args=(conn, port, marks["onward"], timeout, hbone, port in redirected_ports,
                                                  inpod and port == 15001), daemon=True).start()

    threads = [threading.Thread(target=accept, args=pair, daemon=True) for pair in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def serve_app(name: str, port: int) -> None:
    """Run the app server: greet, then echo, for every client, until killed."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    log(event="ready", name=name, port=port)

    def talk(conn: socket.socket) -> None:
        peer, me = conn.getpeername(), conn.getsockname()
        log(event="accepted", name=name, peer=addr_text(peer), local=addr_text(me))
        try:
            conn.sendall(f"hello from {name} ({addr_text(me)}); you are {addr_text(peer)}\n".encode())
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        conn.close()

    while True:
        conn, _ = s.accept()
        threading.Thread(target=talk, args=(conn,), daemon=True).start()


def client(host: str, port: int, bind: str | None, sport: int, timeout: float, send: str = "") -> int:
    """Connect to host:port, print the greeting (or ``error: …``); with ``send``, also send that
    line and print its echo. Return 0 on a greeting (and the echo)."""
    c = socket.socket()
    c.settimeout(timeout)
    try:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if bind or sport:
            c.bind((bind or "0.0.0.0", sport))
        c.connect((host, port))
        data = c.recv(4096).decode()
        if not data:
            print("error: closed without a greeting")
            return 1
        print(data.strip())
        if send:
            c.sendall(f"{send}\n".encode())
            echo = b""
            while not echo.endswith(b"\n") and (chunk := c.recv(4096)):
                echo += chunk
            print(f"echo: {echo.decode().strip()}")
        return 0
    except TimeoutError:
        print("error: timed out")
    except OSError as err:
        print(f"error: {type(err).__name__}: {err.strerror or err}")
    finally:
        c.close()
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m ambientlab.live.lab.standin ztunnel|app|client …``."""
    parser = argparse.ArgumentParser(prog="python -m ambientlab.live.lab.standin")
    sub = parser.add_subparsers(dest="what", required=True)
    z = sub.add_parser("ztunnel")
    z.add_argument("--behaviour", choices=[*sorted(BEHAVIOURS), "inpod", "inpod-redirect"], default="marks-2022")
    z.add_argument("--hbone", help="HBONE configuration (JSON: this node, certificates, workloads)")
    a = sub.add_parser("app")
    a.add_argument("--name", required=True)
    a.add_argument("--port", type=int, default=9080)
    for server in (z, a):  # a label only: `lab down` finds a lab's programs by it, in any namespace
        server.add_argument("--lab", metavar="PREFIX", help="the lab this server belongs to")
    c = sub.add_parser("client")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--bind")
    c.add_argument("--sport", type=int, default=0)
    c.add_argument("--timeout", type=float, default=2.0)
    c.add_argument("--send", default="", help="a line to send after the greeting (its echo is printed)")
    args = parser.parse_args(argv)
    if args.what == "ztunnel":
        serve_ztunnel(args.behaviour, hbone_config=args.hbone)
    elif args.what == "app":
        serve_app(args.name, args.port)
    else:
        return client(args.host, args.port, args.bind, args.sport, args.timeout, args.send)
    return 0


if __name__ == "__main__":
    sys.exit(main())
