"""The socket helpers that ztunnel's stand-in (:mod:`ambientlab.live.lab.standin`) and its HBONE
side (:mod:`ambientlab.live.lab.tunnel`) share: transparent, marked dialing and the log's texts.
Standard library only (both run inside the lab's namespaces)."""

from __future__ import annotations

import socket

IP_TRANSPARENT = 19  # <linux/in.h>; socket.IP_TRANSPARENT is missing on some Pythons
SO_MARK = 36  # <asm-generic/socket.h>
SO_ORIGINAL_DST = 80  # <linux/netfilter_ipv4.h>


def addr_text(pair: tuple[str, int]) -> str:
    """Return ``IP:port``."""
    return f"{pair[0]}:{pair[1]}"


def dial(source: str, dst: tuple[str, int], mark: int, timeout: float) -> socket.socket:
    """Return a socket connected to ``dst`` from address ``source`` (transparent: the address
    may be someone else's), marked ``mark``."""
    out = socket.socket()
    try:
        out.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        if mark:
            out.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        out.bind((source, 0))
        out.settimeout(timeout)
        out.connect(dst)
        out.settimeout(None)
    except OSError:
        out.close()
        raise
    return out


def error_text(err: BaseException) -> str:
    """Return an error as a log line shows it: ``Type: reason``."""
    return f"{type(err).__name__}: {getattr(err, 'strerror', None) or err}"


def original_dst(conn: socket.socket) -> tuple[str, int]:
    """Return the destination a REDIRECTed connection was sent to (conntrack's SO_ORIGINAL_DST)."""
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    return socket.inet_ntoa(raw[4:8]), int.from_bytes(raw[2:4], "big")
