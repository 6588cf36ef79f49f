"""istio-cni agent log lines (``TIMESTAMP<TAB>LEVEL<TAB>SCOPE<TAB>MESSAGE``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.lexer import is_blank, lines_of
from ambientlab.core.tables import Column, frame_from_records

SCHEMA: tuple[Column, ...] = (
    Column("time", "string", "RFC 3339 timestamp as printed"),
    Column("level", "string", "log level: debug, info, warn, error"),
    Column("scope", "string", "istio log scope, e.g. `ambient`"),
    Column("message", "string", "the message"),
)
LEVELS = ("debug", "info", "warn", "error", "fatal")


def parse_cni_log(text: str, source: str = "<text>", *, cut: bool = False) -> pd.DataFrame:
    """Return the lines of an istio-cni log as a DataFrame (:data:`SCHEMA`). An empty text is
    no lines (nothing was logged). ``cut``: see :func:`~ambientlab.core.parse.lexer.lines_of`."""
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    for line in lines_of(text, source, cut):
        if is_blank(line.text):
            continue
        parts = line.text.split("\t", 3)
        if len(parts) != 4 or parts[1] not in LEVELS or "T" not in parts[0] or not parts[0].endswith("Z"):
            raise ParseError(source, line.number, parts[0], "not an istio log line (TIME<TAB>LEVEL<TAB>SCOPE<TAB>MESSAGE)")
        records.append(dict(zip(("time", "level", "scope", "message"), parts, strict=True)))
        numbers.append(line.number)
    return frame_from_records(records, SCHEMA, numbers)
