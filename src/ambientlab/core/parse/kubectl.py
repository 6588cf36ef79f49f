"""``kubectl get`` tables (default, ``-o wide``, ``-ocustom-columns``), with or without header."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.lexer import is_blank, lines_of
from ambientlab.core.tables import Column, frame_from_records

_HEADER_WORD = re.compile(r"[^ \t]+(?: [^ \t]+)*")
_GAP = re.compile(r" {2,}")
# kubectl prints column names in upper case: NAME, READY, NOMINATED NODE, READINESS GATES, …
_COLUMN = re.compile(r"[A-Z][A-Z0-9_()./:-]*(?: [A-Z0-9_()./:-]+)*")


def custom_columns(command: str) -> list[str] | None:
    """Return the column names of ``-ocustom-columns=A:…,B:…`` in a kubectl command, or None."""
    found = re.search(r"-o\s*custom-columns=(\S+)", command)
    if not found:
        return None
    return [spec.split(":", 1)[0] for spec in found.group(1).split(",")]


def parse_kubectl_records(
    text: str, source: str = "<text>", *, columns: list[str] | None = None, cut: bool = False
) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """Return (records, line numbers, column names) of a ``kubectl get`` table.

    Without ``columns`` the first line is the header and each cell must start exactly under
    its header (kubectl aligns them). With ``columns`` (headerless ``| grep`` output) cells are
    separated by two or more blanks and every row must have exactly that many cells, aligned
    with the other rows.

    An empty text is no rows (kubectl prints "No resources found" on stderr and nothing on
    stdout). A header must be upper-case column names, and a header without rows is an
    error: kubectl prints no header when it has nothing to list. ``cut``: see
    :func:`~ambientlab.core.parse.lexer.lines_of`.
    """
    lines = [ln for ln in lines_of(text, source, cut) if not is_blank(ln.text)]
    if not lines:
        return [], [], list(columns or [])
    records, numbers = [], []
    if columns is None:
        header = lines.pop(0)
        found = list(_HEADER_WORD.finditer(header.text))
        columns = [m.group(0) for m in found]
        starts = [m.start() for m in found]
        if len(set(columns)) != len(columns):
            raise ParseError(source, header.number, header.text, "repeated column name")
        bad = [c for c in columns if not _COLUMN.fullmatch(c)]
        if bad or header.text[0] in " \t":
            raise ParseError(source, header.number, bad[0] if bad else header.text, "not a kubectl header (upper-case column names)")
        if not lines:
            raise ParseError(source, header.number, header.text, "a kubectl header without rows")
    else:
        starts = None
    for line in lines:
        if starts is None:
            cells = _GAP.split(line.text.strip(" "))
            positions = [m.end() for m in _GAP.finditer(line.text.rstrip(" "))]
            if len(cells) != len(columns):
                raise ParseError(source, line.number, line.text, f"expected {len(columns)} cells, found {len(cells)}")
            if line.text[0] in " \t":
                raise ParseError(source, line.number, line.text, "row starts with blanks")
            starts = [0, *positions]
        row: dict[str, Any] = {}
        for i, name in enumerate(columns):
            begin = starts[i]
            end = starts[i + 1] if i + 1 < len(starts) else len(line.text)
            cell = line.text[begin:end]
            if begin > 0 and line.text[begin - 1 : begin] not in (" ",):
                raise ParseError(source, line.number, line.text[max(0, begin - 8) : begin + 8], f"cell of {name} is not aligned")
            value = cell.strip(" ")
            if not value or cell[:1] in (" ", "\t") or _GAP.search(value) or "\t" in value:
                raise ParseError(source, line.number, cell or line.text, f"cell of {name} is not aligned")
            row[name] = value
        records.append(row)
        numbers.append(line.number)
    return records, numbers, columns


def parse_kubectl(text: str, source: str = "<text>", *, columns: list[str] | None = None,
                  cut: bool = False) -> pd.DataFrame:
    """Return a ``kubectl get`` table as a DataFrame: one string column per kubectl column,
    named as kubectl prints it (``NAME``, ``IP``, ``NOMINATED NODE``…), index = line; see
    :func:`parse_kubectl_records`."""
    records, numbers, names = parse_kubectl_records(text, source, columns=columns, cut=cut)
    schema = tuple(Column(n, "string", f"kubectl column {n}") for n in names)
    return frame_from_records(records, schema, numbers)
