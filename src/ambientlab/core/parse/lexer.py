"""Line and token cursors shared by all parsers.

Every parser walks its input through a :class:`TokenCursor`, which knows the source name and
line number, so any token it cannot place is reported with :class:`~ambientlab.core.errors.ParseError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ambientlab.core.errors import ParseError


@dataclass(frozen=True)
class Line:
    """One physical line of input: its 1-based number and its text without the newline."""

    number: int
    text: str


BLANKS = re.compile(r"[ \t]+")
DECIMAL = re.compile(r"[0-9]+")
HEXADECIMAL = re.compile(r"0x[0-9a-fA-F]+")


def split_words(text: str) -> list[str]:
    """Return the words of ``text`` split at spaces and tabs only (what the tools print between
    words); any other character, a form feed or U+2028 included, stays inside its word."""
    return [w for w in BLANKS.split(text) if w]


def is_blank(text: str) -> bool:
    """Return True if ``text`` is empty or only spaces and tabs (with a ``\r`` at most at the end)."""
    return not text.strip(" \t")


def lines_of(text: str, source: str = "<text>", cut: bool = False) -> Iterator[Line]:
    """Return the lines of ``text`` with their 1-based numbers, split at ``\n`` only.

    Every line the tools print ends with a newline, so a last line without one means the file
    was cut short (``32766: from all lookup ma``): that is a ParseError naming the line, unless
    ``cut`` says the caller knows the text ends mid-line (a pasted excerpt), when the last line
    is read as it stands. Form feeds, ``\x85``, ``\x1c`` or U+2028 do not end a line; a ``\r``
    is an error (no tool prints one; a file saved with CRLF line ends).
    """
    if not text:
        return
    parts = text.split("\n")
    last = parts.pop()
    if last:
        if not cut:
            raise ParseError(source, len(parts) + 1, last[-40:], "the last line has no newline (file cut short?)")
        parts.append(last)
    for number, raw in enumerate(parts, start=1):
        if "\r" in raw:
            raise ParseError(source, number, raw[max(0, raw.index("\r") - 20):raw.index("\r") + 1],
                             "a carriage return (the tools print none: a file saved with CRLF line ends?)")
        yield Line(number, raw)


def split_quoted(text: str, source: str, number: int) -> list[str]:
    """Return the whitespace-separated words of ``text``; ``"…"`` groups (with ``\\``
    escapes) become one word without the quotes. An unterminated quote is a ParseError."""
    if '"' not in text:
        return split_words(text)  # the common case: no quoted word
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ParseError(source, number, text[i:], "unterminated quoted string")
            words.append("".join(buf))
            i = j + 1
            if i < n and text[i] not in " \t":
                raise ParseError(source, number, split_words(text[i:])[0], "text glued to a quoted string")
            continue
        j = i
        while j < n and text[j] not in " \t":
            j += 1
        words.append(text[i:j])
        i = j
    return words


class TokenCursor:
    """A cursor over the words of one line, which raises ParseError naming the line."""

    def __init__(self, words: list[str], source: str, number: int) -> None:
        self.words = words
        self.pos = 0
        self.source = source
        self.number = number

    @classmethod
    def of(cls, line: Line, source: str, quoted: bool = False) -> TokenCursor:
        """Return a cursor over ``line``'s words (``quoted`` honours ``"…"`` groups)."""
        words = split_quoted(line.text, source, line.number) if quoted else split_words(line.text)
        return cls(words, source, line.number)

    def done(self) -> bool:
        """Return True when every word has been consumed."""
        return self.pos >= len(self.words)

    def peek(self) -> str | None:
        """Return the next word without consuming it, or None at the end."""
        return None if self.done() else self.words[self.pos]

    def next(self, what: str = "a value") -> str:
        """Consume and return the next word; at the end of the line raise ParseError."""
        if self.done():
            last = self.words[-1] if self.words else ""
            raise ParseError(self.source, self.number, last, f"line ends where {what} was expected")
        word = self.words[self.pos]
        self.pos += 1
        return word

    def take(self, word: str) -> bool:
        """Consume the next word if it equals ``word``; return whether it did."""
        if self.peek() == word:
            self.pos += 1
            return True
        return False

    def next_int(self, what: str = "an integer", bits: int = 32) -> int:
        """Consume the next word as an unsigned decimal integer of ``bits`` bits (ASCII digits
        only: no sign, no ``_``, no other script's digits) and return it."""
        return self.uint(self.next(what), what, bits)

    def uint(self, word: str, what: str = "an integer", bits: int = 32, *, hexadecimal: bool = False) -> int:
        """Return ``word`` as an unsigned integer below ``2**bits``: decimal ASCII digits, or
        with ``hexadecimal`` ``0x`` and hex digits; else raise ParseError naming the word."""
        pattern = HEXADECIMAL if hexadecimal else DECIMAL
        if not pattern.fullmatch(word):
            raise self.error(word, f"expected {what} ({'0x…' if hexadecimal else 'decimal digits'})")
        if not hexadecimal and len(word) > 1 and word[0] == "0":
            raise self.error(word, f"{what} with a leading zero (the tools print none)")
        value = int(word, 16 if hexadecimal else 10)
        if value >= 1 << bits:
            raise self.error(word, f"{what} out of range (a {bits}-bit unsigned value)")
        return value

    def error(self, token: str, reason: str) -> ParseError:
        """Return (not raise) a ParseError for ``token`` on this line."""
        return ParseError(self.source, self.number, token, reason)

    def unexpected(self) -> ParseError:
        """Return a ParseError for the next, unconsumed word."""
        return self.error(self.peek() or "", "unexpected token")
