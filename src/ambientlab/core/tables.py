"""Turning parsed records into DataFrames with a declared schema, and back.

A record is a dict whose keys and value forms are the ones the underlying tool prints with
``-j`` (for iproute2) or that the parser documents. A DataFrame made by
:func:`frame_from_records` has one column per schema entry, in schema order, with the declared
dtype; a key absent from a record is a missing value (``<NA>``). :func:`records_from_frame`
inverts it exactly, so ``--json`` output and DataFrames never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas._libs.lib import convert_nans_to_NA
from pandas.api.extensions import ExtensionArray
from pandas.arrays import IntegerArray, StringArray


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
    known = {c.name for c in schema}
    for rec in records:
        if not known.issuperset(rec):
            raise KeyError(f"record has keys outside the schema: {sorted(set(rec) - known)}")
    columns: dict[str, Sequence[Any]] = {}
    for col in schema:
        name = col.name
        columns[name] = [name in rec for rec in records] if col.presence else [rec.get(name) for rec in records]
    return frame_from_columns(columns, schema, len(records), index)


def _all_missing(dtype: str, n: int) -> ExtensionArray | np.ndarray:
    """Return a column of ``n`` missing values of ``dtype`` (None in an object column, else ``<NA>``)."""
    if dtype == "object":
        return np.full(n, None, dtype=object)
    if dtype == "string":
        return StringArray(np.full(n, pd.NA, dtype=object))
    if dtype == "Int64":
        return IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    return pd.array([None] * n, dtype=dtype)


_STRING = pd.StringDtype()  # the "string" dtype, resolved once (a lookup by name costs more than a small column)
_NO_STRINGS = StringArray(np.array([], dtype=object))  # wraps arrays of str and <NA> (_from_backing_data)


def string_column(values: Sequence[str | None], *, known_str: bool = False) -> ExtensionArray:
    """Return ``values`` as a ``string`` column, None as ``<NA>`` (a value that is not a str
    becomes its str, as pandas casts it).

    ``known_str``: the caller guarantees that every value is a str or None (the groups of a
    regular expression). pandas' per-value cast is then skipped: None becomes ``<NA>`` in place
    (pandas' own ``convert_nans_to_NA``, in C) and the array is stored as it is, in half the time,
    with the same result. Only for such values: ``convert_nans_to_NA`` makes ``<NA>`` of any value
    that is not a str, where the cast would make ``"5"`` of ``5``.
    """
    array = np.fromiter(values, dtype=object, count=len(values))
    if not known_str:
        return pd.array(array, dtype=_STRING, copy=False)
    convert_nans_to_NA(array)
    return _NO_STRINGS._from_backing_data(array)


def frame_from_columns(
    columns: Mapping[str, Sequence[Any] | ExtensionArray | np.ndarray], schema: Sequence[Column], length: int,
    index: Iterable[int] | None = None, *, known_str: bool = False,
) -> pd.DataFrame:
    """Return a DataFrame with exactly the schema's columns and dtypes from ``columns``, each a
    sequence of ``length`` values (None for a missing value; a presence column holds booleans) or an
    array already of the column's dtype. A column absent from ``columns`` is all missing.
    ``known_str``: every value given for a string column is a str or None (see :func:`string_column`).

    This is the one place where parsed values become typed columns: :func:`frame_from_records`
    uses it, and a parser that gathers its values column by column (``ip route``) calls it
    directly. A name in ``columns`` that is not in the schema raises KeyError.
    """
    extra = set(columns) - {c.name for c in schema}
    if extra:
        raise KeyError(f"columns outside the schema: {sorted(extra)}")
    if index is None:
        idx = pd.Index(range(length), name="line")
    else:
        numbers = np.arange(index.start, index.stop, index.step, dtype=np.int64) if isinstance(index, range) \
            else np.fromiter(index, dtype=np.int64)
        idx = pd.Index(numbers if len(numbers) else [], name="line")
    if len(idx) != length:
        raise ValueError(f"{len(idx)} index values for {length} rows")
    data: dict[str, Any] = {}
    missing: dict[str, Any] = {}  # one all-missing column per dtype, copied for the next ones
    for col in schema:
        values = columns.get(col.name)
        if values is not None and not isinstance(values, ExtensionArray | np.ndarray):
            if len(values) != length:
                raise ValueError(f"column {col.name}: {len(values)} values for {length} rows")
            if col.dtype == "string" and not any(values) and set(values) <= {None}:  # all missing: no str to check
                values = None
        if values is None:
            data[col.name] = missing[col.dtype].copy() if col.dtype in missing else \
                missing.setdefault(col.dtype, _all_missing(col.dtype, length))
        elif isinstance(values, ExtensionArray | np.ndarray):
            if str(values.dtype) != col.dtype or len(values) != length:
                raise ValueError(f"column {col.name}: {values.dtype} x {len(values)} where {col.dtype} x {length} was expected")
            data[col.name] = values
        elif col.dtype == "object":
            data[col.name] = np.fromiter(values, dtype=object, count=length)
        elif col.dtype == "string":
            data[col.name] = string_column(values, known_str=known_str)
        else:
            data[col.name] = pd.array(values, dtype=col.dtype)
    # The arrays are checked above (dtype and length each), so pandas' per-column sanitizing in
    # DataFrame(dict), which costs more than a small frame's data, is skipped (the same frame).
    names = [c.name for c in schema]
    return pd.DataFrame._from_arrays([data[name] for name in names], names, idx, verify_integrity=False)


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
    # one conversion of the whole frame, not one Series per column and row (itertuples): the same
    # values (_plain turns numpy scalars into Python ones either way), in a fraction of the time
    for row in frame.to_numpy(dtype=object):
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
