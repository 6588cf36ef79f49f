"""Value checks shared by the parsers (addresses, prefixes, hex marks)."""

from __future__ import annotations

import socket
from functools import lru_cache

from ambientlab.core.parse.lexer import TokenCursor


@lru_cache(maxsize=1 << 16)
def is_address(word: str) -> bool:
    """Return True if ``word`` is an IPv4 or IPv6 address in the form iproute2 prints (inet_pton)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, word)
            return True
        except (OSError, ValueError):
            continue
    return False


def check_address(cur: TokenCursor, word: str) -> str:
    """Return ``word`` if it is an IPv4 or IPv6 address, else raise ParseError."""
    if not is_address(word):
        raise cur.error(word, "not an IP address")
    return word


def split_prefix(cur: TokenCursor, word: str) -> tuple[str, int | None]:
    """Return (address, prefix length or None) for ``ADDR`` or ``ADDR/LEN``; raise on junk."""
    addr, slash, length = word.partition("/")
    check_address(cur, addr)
    if not slash:
        return addr, None
    limit = 32 if "." in addr else 128
    if not length.isdigit() or int(length) > limit:
        raise cur.error(word, "bad prefix length")
    return addr, int(length)


def check_hex(cur: TokenCursor, word: str) -> str:
    """Return ``word`` if it is a ``0x…`` hexadecimal number, else raise ParseError."""
    if not word.startswith("0x") or len(word) < 3:
        raise cur.error(word, "expected a 0x… hexadecimal value")
    try:
        int(word, 16)
    except ValueError:
        raise cur.error(word, "expected a 0x… hexadecimal value") from None
    return word


def check_name(cur: TokenCursor, word: str, what: str) -> str:
    """Return ``word`` if it can be an interface or table name (no ``/``, not empty)."""
    if not word or "/" in word or word.startswith("-"):
        raise cur.error(word, f"not a valid {what}")
    return word


def port_range(cur: TokenCursor, key: str, word: str) -> dict[str, int]:
    """Return ``{key: n}`` for ``N`` or ``{key_start: a, key_end: b}`` for ``A-B``."""
    lo, dash, hi = word.partition("-")
    if not lo.isdigit() or (dash and not hi.isdigit()):
        raise cur.error(word, f"bad {key} value")
    if not dash or lo == hi:
        return {key: int(lo)}
    return {f"{key}_start": int(lo), f"{key}_end": int(hi)}
