"""``nft monitor trace`` output (one event per line) and the lab's JSON-lines logs."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.lexer import lines_of
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
LINE = re.compile(r"^trace id ([0-9a-f]+) (\S+) (\S+) (\S+) (packet|rule|verdict|policy):? ?(.*?)\s*$")


def parse_nft_trace(text: str, source: str = "<text>") -> pd.DataFrame:
    """Return the events of ``nft monitor trace`` output (:data:`SCHEMA`; blank lines skipped)."""
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    for line in lines_of(text):
        if not line.text.strip():
            continue
        found = LINE.match(line.text)
        if not found:
            token = line.text.split()[0] if line.text.split() else line.text
            raise ParseError(source, line.number, token, "not an `nft monitor trace` event "
                             "(trace id ID FAMILY TABLE CHAIN packet|rule|verdict|policy …)")
        tid, family, table, chain, event, body = found.groups()
        rec: dict[str, Any] = {"id": tid, "family": family, "table": table, "chain": chain, "event": event,
                               "body": body}
        if event == "packet":
            for key in ("iif", "oif"):
                dev = re.search(rf'(?:^| ){key} "([^"]+)"', body)
                if dev:
                    rec[key] = dev.group(1)
        elif event == "rule":
            verdict = re.search(r"\(verdict ([^)]+)\)$", body)
            if not verdict:
                raise ParseError(source, line.number, body.split()[-1] if body else event, "rule without (verdict …)")
            rec["verdict"] = verdict.group(1)
        else:
            tail = re.fullmatch(r"(\S+(?: \S+)?)(?: meta mark (0x[0-9a-f]+))?", body) if event == "verdict" else \
                re.fullmatch(r"(\S+)(?: meta mark (0x[0-9a-f]+))?", body)
            if not tail:
                raise ParseError(source, line.number, body or event, f"unexpected {event} line")
            rec["verdict"] = tail.group(1)
            if tail.group(2):
                rec["mark"] = hex(int(tail.group(2), 16))
        records.append(rec)
        numbers.append(line.number)
    return frame_from_records(records, SCHEMA, numbers)


def parse_jsonl(text: str, source: str = "<text>") -> pd.DataFrame:
    """Return JSON-lines output (one object per line) as a DataFrame with one column per key
    (nested values kept as JSON text); a line that is not a JSON object is an error."""
    records, numbers = [], []
    for line in lines_of(text):
        if not line.text.strip():
            continue
        try:
            value = json.loads(line.text)
        except json.JSONDecodeError as err:
            raise ParseError(source, line.number, line.text[max(0, err.pos - 5):err.pos + 5] or line.text,
                             f"not JSON: {err.msg}") from None
        if not isinstance(value, dict):
            raise ParseError(source, line.number, line.text[:20], "expected a JSON object")
        records.append({k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for k, v in value.items()})
        numbers.append(line.number)
    frame = pd.DataFrame(records, index=pd.Index(numbers, name="line"), dtype=object)
    return frame.where(frame.notna(), None) if len(frame) else frame
