"""Turning parsed records into DataFrames with a declared schema, and back.

A record is a dict whose keys and value forms are the ones the underlying tool prints with
``-j`` (for iproute2) or that the parser documents. A DataFrame made by
:func:`frame_from_records` has one column per schema entry, in schema order, with the declared
dtype; a key absent from a record is a missing value (``<NA>``). :func:`records_from_frame`
inverts it exactly, so ``--json`` output and DataFrames never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Column:
    """One documented column: name, pandas dtype and meaning.

    ``dtype`` is ``"Int64"`` (nullable integer), ``"string"``, ``"boolean"`` or ``"object"``
    (lists and dicts). ``presence`` marks keys that iproute2 prints as ``"key": null`` when a
    flag is set: the column is boolean and the key is emitted as null when True.
    """

    name: str
    dtype: str
    doc: str
    presence: bool = False


def schema_doc(schema: Sequence[Column]) -> str:
    """Return a Markdown table describing ``schema`` (for docstrings and the book)."""
    rows = ["| column | dtype | meaning |", "|---|---|---|"]
    rows += [f"| `{c.name}` | {c.dtype} | {c.doc} |" for c in schema]
    return "\n".join(rows)


def frame_from_records(
    records: Sequence[dict[str, Any]], schema: Sequence[Column], index: Iterable[int] | None = None
) -> pd.DataFrame:
    """Return a DataFrame with exactly the schema's columns and dtypes, one row per record.

    ``index`` (the source line numbers, usually) becomes the index, named ``line``. A record key
    that is not in the schema raises KeyError: the schema is the contract.
    """
    names = [c.name for c in schema]
    known = set(names)
    for rec in records:
        extra = set(rec) - known
        if extra:
            raise KeyError(f"record has keys outside the schema: {sorted(extra)}")
    idx = pd.Index(list(index) if index is not None else range(len(records)), name="line")
    # one C-level pass builds every column (a missing key becomes NaN); each column is then cast
    raw = pd.DataFrame.from_records(list(records), columns=names) if records else pd.DataFrame(columns=names)
    raw.index = idx
    data: dict[str, pd.Series] = {}
    for col in schema:
        if col.presence:
            data[col.name] = pd.Series([col.name in rec for rec in records], index=idx, dtype=col.dtype)
            continue
        series = raw[col.name]
        if col.dtype == "object":
            data[col.name] = series.astype("object").where(series.notna(), None)
        else:
            data[col.name] = series.astype("object").where(series.notna(), pd.NA).astype(col.dtype)
    return pd.DataFrame(data, index=idx, columns=names)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value)) if not isinstance(value, (list, dict, tuple)) else False
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """Convert numpy/pandas scalars to plain Python values for JSON."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    return value


def records_from_frame(frame: pd.DataFrame, schema: Sequence[Column]) -> list[dict[str, Any]]:
    """Return the records a frame was made from (missing values dropped, presence flags as null)."""
    out: list[dict[str, Any]] = []
    for row in frame.itertuples(index=False, name=None):
        rec: dict[str, Any] = {}
        for col, value in zip(schema, row, strict=True):
            if col.presence:
                if bool(value):
                    rec[col.name] = None
            elif not _is_missing(value):
                rec[col.name] = _plain(value)
        out.append(rec)
    return out


def compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` without the columns that say nothing: all missing, or all False."""
    keep = [c for c in frame.columns if not (frame[c].isna().all() or (frame[c].dtype == "boolean" and not frame[c].any()))]
    return frame[keep]
