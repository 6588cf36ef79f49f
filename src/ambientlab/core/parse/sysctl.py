"""``sysctl`` output (``key = value`` lines) as a DataFrame of keys and values."""

from __future__ import annotations

import re

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.lexer import is_blank, lines_of
from ambientlab.core.tables import Column, frame_from_records

SCHEMA: tuple[Column, ...] = (
    Column("key", "string", "the sysctl name, e.g. `net.ipv4.conf.all.rp_filter` (a key printed on several "
                            "consecutive lines, like `dev.cdrom.info`, has one row per line)"),
    Column("value", "string", "its value verbatim as printed after `KEY = ` (may be empty, may hold tabs; "
                              "`KEY =` with its blank stripped by an editor is an empty value too)"),
)
# sysctl prints "%s = %s\n": the key has no blanks and no "=" (it may hold "/", as in
# fs.binfmt_misc.python3/5 or net.ipv4.conf.eth0/100.rp_filter, a VLAN device eth0.100).
LINE = re.compile(r"([^ \t=]+) =(?: ([^\n]*))?")
KEY = re.compile(r"[a-z][a-z0-9_]*(?:\.[^ \t=.]+)+")


def parse_sysctl(text: str, source: str = "<text>", *, cut: bool = False) -> pd.DataFrame:
    """Return the ``key = value`` lines of ``sysctl`` output as a DataFrame (:data:`SCHEMA`).

    Blank lines are skipped. A key may repeat only on consecutive lines (``sysctl -a`` prints a
    value of several lines that way; every line is kept); a key seen again later is an error.
    An empty text is a ParseError: ``sysctl -a`` and ``sysctl KEY`` always print something.
    ``cut``: see :func:`~ambientlab.core.parse.lexer.lines_of`.
    """
    if not text.strip(" \t\n"):
        raise ParseError(source, 1, text, "empty sysctl output (sysctl always prints the keys asked for)")
    records, numbers, seen = [], [], set()
    previous = None
    for line in lines_of(text, source, cut):
        if is_blank(line.text):
            previous = None
            continue
        found = LINE.fullmatch(line.text)
        if not found or not KEY.fullmatch(found.group(1)):
            raise ParseError(source, line.number, line.text, "expected 'key = value'")
        key = found.group(1)
        if key in seen and key != previous:
            raise ParseError(source, line.number, key, "key repeated (not on the line after it)")
        seen.add(key)
        previous = key
        records.append({"key": key, "value": found.group(2) or ""})
        numbers.append(line.number)
    return frame_from_records(records, SCHEMA, numbers)
