"""Value checks shared by the parsers (addresses, prefixes, numbers of kernel types, names).

Numbers are read from ASCII digits only (no sign, no ``_``, no other script's digits) and
checked against the width of the kernel field they come from: marks, tables, priorities and
metrics are u32, ports u16, prefix lengths at most 32 (IPv4) or 128 (IPv6).
"""

from __future__ import annotations

import socket
from functools import lru_cache

from ambientlab.core.parse.lexer import DECIMAL, TokenCursor


@lru_cache(maxsize=1 << 16)
def address_family(word: str) -> str | None:
    """Return ``"inet"`` or ``"inet6"`` for an address in the form iproute2 prints
    (``inet_pton`` accepts it), else None."""
    if not word.isascii():
        return None
    for family, name in ((socket.AF_INET, "inet"), (socket.AF_INET6, "inet6")):
        try:
            socket.inet_pton(family, word)
            return name
        except (OSError, ValueError):
            continue
    return None


def is_address(word: str) -> bool:
    """Return True if ``word`` is an IPv4 or IPv6 address in the form iproute2 prints (inet_pton)."""
    return address_family(word) is not None


def check_address(cur: TokenCursor, word: str, family: str | None = None) -> str:
    """Return ``word`` if it is an IPv4 or IPv6 address (of ``family`` when given), else raise ParseError."""
    found = address_family(word)
    if found is None:
        raise cur.error(word, "not an IP address")
    if family is not None and found != family:
        raise cur.error(word, f"an {found} address where {family} was expected")
    return word


def split_prefix(cur: TokenCursor, word: str, family: str | None = None) -> tuple[str, int | None]:
    """Return (address, prefix length or None) for ``ADDR`` or ``ADDR/LEN``; raise on junk,
    on a length above 32 (IPv4) or 128 (IPv6), and on an address not of ``family`` (if given)."""
    addr, slash, length = word.partition("/")
    check_address(cur, addr, family)
    if not slash:
        return addr, None
    limit = 128 if ":" in addr else 32
    if not DECIMAL.fullmatch(length) or int(length) > limit or (len(length) > 1 and length[0] == "0"):
        raise cur.error(word, "bad prefix length")
    return addr, int(length)


def check_hex(cur: TokenCursor, word: str, bits: int = 32) -> str:
    """Return ``word`` if it is a ``0x…`` hexadecimal number below ``2**bits``, else raise ParseError."""
    cur.uint(word, "a 0x… hexadecimal value", bits, hexadecimal=True)
    return word


def check_mark(cur: TokenCursor, word: str, bits: int = 32) -> str:
    """Return ``word`` if it is a mark as iproute2 prints it with ``%#x``: ``0x…``, or ``0``
    (C's ``%#x`` prints zero without the prefix); below ``2**bits``. Else raise ParseError."""
    if word == "0":
        return word
    return check_hex(cur, word, bits)


def check_name(cur: TokenCursor, word: str, what: str) -> str:
    """Return ``word`` if it can be an interface or table name (no ``/``, not empty, printable ASCII
    for a device: the kernel's ``dev_valid_name`` allows no blanks, ``/`` or ``:``)."""
    if not word or "/" in word or word.startswith("-") or not word.isprintable():
        raise cur.error(word, f"not a valid {what}")
    return word


def port_range(cur: TokenCursor, key: str, word: str) -> dict[str, int]:
    """Return ``{key: n}`` for ``N`` or ``{key_start: a, key_end: b}`` for ``A-B`` (u16 ports)."""
    lo, dash, hi = word.partition("-")
    start = cur.uint(lo, f"a {key} value", 16)
    if not dash:
        return {key: start}
    end = cur.uint(hi, f"a {key} value", 16)
    if start >= end:
        raise cur.error(word, f"bad {key} range (iproute2 prints one port as N, and a range low-high)")
    return {f"{key}_start": start, f"{key}_end": end}
