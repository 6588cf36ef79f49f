"""``nft monitor trace`` output (one event per line) and the lab's JSON-lines logs."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.lexer import is_blank, lines_of
from ambientlab.core.tables import Column, frame_from_records

SCHEMA: tuple[Column, ...] = (
    Column("id", "string", "trace id: one packet's passage through one namespace"),
    Column("family", "string", "nftables family (`ip`)"),
    Column("table", "string", "table (raw, mangle, nat, filter)"),
    Column("chain", "string", "chain (a base chain names the hook)"),
    Column("event", "string", "`packet` (headers on entering the chain), `rule`, `verdict` or `policy`"),
    Column("body", "string", "everything after the event word, as printed"),
    Column("verdict", "string", "the verdict of a rule, verdict or policy line"),
    Column("mark", "string", "`meta mark` printed at the end of a verdict or policy line"),
    Column("iif", "string", "input device of a packet line"),
    Column("oif", "string", "output device of a packet line"),
)
# The head of an event line; the body is the rest without its trailing blanks. (A lazy
# "(.*?)\s*$" here took quadratic time on long lines; every pattern below runs in linear time.)
LINE = re.compile(r"trace id ([0-9a-f]+) ([^ \t]+) ([^ \t]+) ([^ \t]+) (packet|rule|verdict|policy):? ?")
DEVICE = re.compile(r'(?:^| )(iif|oif) "([^" ]*)"')
TAIL_VERDICT = re.compile(r"([^ \t]+(?: [^ \t]+)?)(?: meta mark (0x[0-9a-f]+))?")
TAIL_POLICY = re.compile(r"([^ \t]+)(?: meta mark (0x[0-9a-f]+))?")


def parse_nft_trace(text: str, source: str = "<text>", *, cut: bool = False) -> pd.DataFrame:
    """Return the events of ``nft monitor trace`` output (:data:`SCHEMA`; blank lines skipped).

    An empty text is no events (no packet was traced). ``cut``: see
    :func:`~ambientlab.core.parse.lexer.lines_of`."""
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    for line in lines_of(text, source, cut):
        if is_blank(line.text):
            continue
        found = LINE.match(line.text)
        if not found:
            token = line.text.split()[0] if line.text.split() else line.text
            raise ParseError(source, line.number, token, "not an `nft monitor trace` event "
                             "(trace id ID FAMILY TABLE CHAIN packet|rule|verdict|policy …)")
        tid, family, table, chain, event = found.groups()
        body = line.text[found.end():].rstrip(" \t")
        rec: dict[str, Any] = {"id": tid, "family": family, "table": table, "chain": chain, "event": event,
                               "body": body}
        if event == "packet":
            for dev in DEVICE.finditer(body):
                if dev.group(1) in rec:
                    raise ParseError(source, line.number, dev.group(0).strip(), "device repeated")
                if dev.group(2):
                    rec[dev.group(1)] = dev.group(2)
        elif event == "rule":
            start = body.rfind("(verdict ")
            verdict = body[start + len("(verdict "):-1] if start >= 0 and body.endswith(")") else ""
            if not verdict or ")" in verdict or "(" in verdict:
                raise ParseError(source, line.number, body.split()[-1] if body else event, "rule without (verdict …)")
            rec["verdict"] = verdict
        else:
            tail = (TAIL_VERDICT if event == "verdict" else TAIL_POLICY).fullmatch(body)
            if not tail:
                raise ParseError(source, line.number, body or event, f"unexpected {event} line")
            rec["verdict"] = tail.group(1)
            if tail.group(2):
                rec["mark"] = hex(int(tail.group(2), 16))
        records.append(rec)
        numbers.append(line.number)
    return frame_from_records(records, SCHEMA, numbers)


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def parse_jsonl(text: str, source: str = "<text>", *, cut: bool = False) -> pd.DataFrame:
    """Return JSON-lines output (one object per line) as a DataFrame with one column per key
    (nested values kept as JSON text); a line that is not a JSON object, a key repeated in
    one object (at any depth) and NaN/Infinity are errors. An empty text is no records.
    ``cut``: see :func:`~ambientlab.core.parse.lexer.lines_of`."""
    records, numbers = [], []
    for line in lines_of(text, source, cut):
        if is_blank(line.text):
            continue
        try:
            value = json.loads(line.text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        except _Duplicate as err:
            raise ParseError(source, line.number, err.key, "key repeated in a JSON object") from None
        except json.JSONDecodeError as err:
            raise ParseError(source, line.number, line.text[max(0, err.pos - 5):err.pos + 5] or line.text,
                             f"not JSON: {err.msg}") from None
        except (ValueError, RecursionError) as err:
            raise ParseError(source, line.number, str(err)[:40], "not JSON this parser keeps exactly") from None
        if not isinstance(value, dict):
            raise ParseError(source, line.number, line.text[:20], "expected a JSON object")
        records.append({k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for k, v in value.items()})
        numbers.append(line.number)
    frame = pd.DataFrame(records, index=pd.Index(numbers, name="line"), dtype=object)
    return frame.where(frame.notna(), None) if len(frame) else frame
