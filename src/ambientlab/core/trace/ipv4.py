"""IPv4 addresses as integers, and the address classes the kernel's routing code tests."""

from __future__ import annotations

import re
import socket
from functools import lru_cache

SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
TABLES = {"unspec": 0, "default": 253, "main": 254, "local": 255}
TABLE_NAMES = {v: k for k, v in TABLES.items() if k != "unspec"}
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
MASKS = [((0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF) for n in range(33)]


@lru_cache(maxsize=1 << 16)
def to_int(text: str) -> int:
    """Return the dotted-quad IPv4 address ``text`` as an integer (ValueError if it is not one)."""
    if not QUAD.fullmatch(text):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return int.from_bytes(socket.inet_aton(text), "big")


@lru_cache(maxsize=1 << 16)
def to_text(value: int) -> str:
    """Return the dotted-quad text of the integer IPv4 address ``value``."""
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def prefix(text: str) -> tuple[int, int]:
    """Return (network, length) of ``A.B.C.D[/N]`` or ``default`` (host bits must be zero)."""
    if text == "default":
        return 0, 0
    addr, _, length = text.partition("/")
    plen = int(length) if length else 32
    if not 0 <= plen <= 32:
        raise ValueError(f"bad prefix length in {text!r}")
    value = to_int(addr)
    return value & MASKS[plen], plen


def table_id(name: str) -> int:
    """Return the number of routing table ``name`` (``main``, ``local``, ``default`` or a number)."""
    if name in TABLES:
        return TABLES[name]
    if not name.isdigit():
        raise ValueError(f"unknown routing table {name!r} (the tracer knows numbers and main/local/default)")
    return int(name)


def table_name(number: int) -> str:
    """Return how iproute2 prints table ``number``."""
    return TABLE_NAMES.get(number, str(number))


def is_multicast(a: int) -> bool:
    """Return True for 224.0.0.0/4."""
    return (a & 0xF0000000) == 0xE0000000


def is_local_multicast(a: int) -> bool:
    """Return True for 224.0.0.0/24."""
    return (a & 0xFFFFFF00) == 0xE0000000


def is_lbcast(a: int) -> bool:
    """Return True for the limited broadcast 255.255.255.255."""
    return a == 0xFFFFFFFF


def is_zeronet(a: int) -> bool:
    """Return True for 0.0.0.0/8."""
    return (a & 0xFF000000) == 0


def is_loopback(a: int) -> bool:
    """Return True for 127.0.0.0/8."""
    return (a & 0xFF000000) == 0x7F000000
