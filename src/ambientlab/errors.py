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
