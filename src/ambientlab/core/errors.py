"""Errors raised by ambientlab."""

from __future__ import annotations


class ParseError(ValueError):
    """Input that a parser cannot represent completely.

    The message always names the source (a file name or ``<text>``), the 1-based line
    number and the offending token, so ``str(err)`` fits on one line of a terminal.
    """

    def __init__(self, source: str, line: int, token: str, reason: str) -> None:
        self.source = source
        self.line = line
        self.token = token
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}: {token!r}")


def decode_text(data: bytes, source: str) -> str:
    """Return ``data`` decoded as UTF-8; raise :class:`ParseError` naming the line and the bytes
    of the first invalid sequence."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        bad = " ".join(f"0x{b:02x}" for b in data[err.start:err.end])
        raise ParseError(source, line, bad, f"invalid UTF-8 at column {column} ({err.reason})") from None
