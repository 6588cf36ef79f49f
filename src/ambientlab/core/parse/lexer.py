"""Line and token cursors shared by all parsers.

Every parser walks its input through a :class:`TokenCursor`, which knows the source name and
line number, so any token it cannot place is reported with :class:`~ambientlab.core.errors.ParseError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ambientlab.core.errors import ParseError


@dataclass(frozen=True)
class Line:
    """One physical line of input: its 1-based number and its text without the newline."""

    number: int
    text: str


def lines_of(text: str) -> Iterator[Line]:
    """Return the lines of ``text`` with their 1-based numbers (newlines removed)."""
    for number, raw in enumerate(text.splitlines(), start=1):
        yield Line(number, raw)


def split_quoted(text: str, source: str, number: int) -> list[str]:
    """Return the whitespace-separated words of ``text``; ``"…"`` groups (with ``\\``
    escapes) become one word without the quotes. An unterminated quote is a ParseError."""
    if '"' not in text:
        return text.split()  # the common case: no quoted word
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
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
            if i < n and not text[i].isspace():
                raise ParseError(source, number, text[i:].split()[0], "text glued to a quoted string")
            continue
        j = i
        while j < n and not text[j].isspace():
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
        words = split_quoted(line.text, source, line.number) if quoted else line.text.split()
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

    def next_int(self, what: str = "an integer", base: int = 10) -> int:
        """Consume the next word as an integer in ``base`` (0 = Python literal rules)."""
        word = self.next(what)
        try:
            return int(word, base)
        except ValueError:
            raise self.error(word, f"expected {what}") from None

    def error(self, token: str, reason: str) -> ParseError:
        """Return (not raise) a ParseError for ``token`` on this line."""
        return ParseError(self.source, self.number, token, reason)

    def unexpected(self) -> ParseError:
        """Return a ParseError for the next, unconsumed word."""
        return self.error(self.peek() or "", "unexpected token")
