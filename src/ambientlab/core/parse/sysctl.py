"""``sysctl`` output (``key = value`` lines) as a DataFrame of keys and values."""

from __future__ import annotations

import re

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.lexer import lines_of
from ambientlab.core.tables import Column, frame_from_records

SCHEMA: tuple[Column, ...] = (
    Column("key", "string", "the sysctl name, e.g. `net.ipv4.conf.all.rp_filter`"),
    Column("value", "string", "its value as printed"),
)
LINE = re.compile(r"^([A-Za-z0-9_]+(?:\.[A-Za-z0-9_@:+-]+)+) = (\S(?:.*\S)?)$")


def parse_sysctl(text: str, source: str = "<text>") -> pd.DataFrame:
    """Return the ``key = value`` lines of ``sysctl`` output (blank lines skipped; repeats rejected)."""
    records, numbers, seen = [], [], set()
    for line in lines_of(text):
        if not line.text.strip():
            continue
        found = LINE.match(line.text)
        if not found:
            raise ParseError(source, line.number, line.text, "expected 'key = value'")
        if found.group(1) in seen:
            raise ParseError(source, line.number, found.group(1), "key repeated")
        seen.add(found.group(1))
        records.append({"key": found.group(1), "value": found.group(2)})
        numbers.append(line.number)
    return frame_from_records(records, SCHEMA, numbers)
