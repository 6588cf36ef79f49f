"""Reading what the live lab recorded (captures of origin ``lab``): an output compared with the
capture's own file (:func:`verdict`), and a traced connection with the tracer's prediction for
it and the kernel's trace of it, hook by hook (:func:`recorded_trace`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields

import pandas as pd

from ambientlab.core.capture import Capture
from ambientlab.core.parse import parse, to_records
from ambientlab.core.trace.nftrace import compare, kernel_segments
from ambientlab.core.trace.predict import Connection, HboneConnection, Prediction, predict, predict_hbone


def verdict(source: Capture, path: str, parser: str, text: str, where: str = "lab") -> str:
    """Return how ``text`` (an output printed elsewhere, e.g. by a lab) compares with file ``path``
    of capture ``source``: ``same text``; for an ipset ``same members`` (revision, hash seed, order
    and size in memory depend on the kernel); for a tunnel ``same id, remote, port`` (a stand-in
    type prints other details); for iptables-save ``same rules (counters aside)`` when only the
    chains' packet and byte counters differ (they count the lab's traffic); else ``DIFFERENT``."""
    if text == source.text(path):
        return "same text"
    if parser == "iptables-save":
        zero = re.compile(r"^(:\S+ \S+) \[\d+:\d+\]$", re.M)
        same = zero.sub(r"\1 [0:0]", text) == zero.sub(r"\1 [0:0]", source.text(path))
        return "same rules (counters aside)" if same else "DIFFERENT"
    if parser == "ipset":
        ours, theirs = (frame.members[["set", "elem"]] for frame in (parse("ipset", text, where), source.parse(path)))
        same = set(map(tuple, ours.to_numpy().tolist())) == set(map(tuple, theirs.to_numpy().tolist()))
        return "same members" if same else "DIFFERENT"
    if parser == "ip-link":
        keys = ("id", "remote", "port")
        ours_l, theirs_l = (to_records("ip-link", f) for f in (parse("ip-link", text, where), source.parse(path)))
        same = [{k: r["linkinfo"]["info_data"].get(k) for k in keys} for r in ours_l] == \
            [{k: r["linkinfo"]["info_data"].get(k) for k in keys} for r in theirs_l]
        return "same id, remote, port" if same else "DIFFERENT"
    return "DIFFERENT"


@dataclass(frozen=True)
class RecordedTrace:
    """One connection the lab traced: the connection as the tracer sees it, what the client
    printed, and the kernel's ``nft monitor trace`` of each traced host."""

    name: str
    connection: Connection | HboneConnection
    client_output: str
    texts: dict[str, str]  # host -> nft monitor trace text

    def prediction(self) -> Prediction:
        """Return the tracer's prediction for the connection (one node, or HBONE across two)."""
        if isinstance(self.connection, HboneConnection):
            return predict_hbone(self.connection)
        return predict(self.connection)

    def comparison(self) -> pd.DataFrame:
        """Return the prediction's hooks next to the kernel's, one row per hook
        (:func:`ambientlab.core.trace.nftrace.compare`; column ``agree``)."""
        return compare(self.prediction().hops, kernel_segments(self.texts))


def recorded_traces(session: Capture) -> list[str]:
    """Return the names of the traced connections recorded in ``session`` (for :func:`recorded_trace`)."""
    return sorted(p.removeprefix("session/").removesuffix(".jsonl") for p in session.files.index
                  if re.fullmatch(r"session/(hbone-)?trace-.+\.jsonl", p))


def recorded_trace(session: Capture, name: str) -> RecordedTrace:
    """Return the traced connection ``name`` of lab recording ``session`` (files
    ``session/NAME.jsonl`` and ``session/NAME-HOST.txt``; names from :func:`recorded_traces`)."""
    stem = f"session/{name}"
    if f"{stem}.jsonl" not in session.files.index:
        raise KeyError(f"{session.name} has no traced connection {name!r}; it has: {', '.join(recorded_traces(session))}")
    session.parse(f"{stem}.jsonl")  # checked like every recorded file
    record = json.loads(session.text(f"{stem}.jsonl"))
    kind = HboneConnection if "tunnel_port" in record else Connection
    values = {f.name: record[f.name] for f in fields(kind) if f.name in record}
    if "captures" in values:
        values["captures"] = tuple(values["captures"])
    texts = {p.removeprefix(f"{stem}-").removesuffix(".txt"): session.text(p) for p in session.files.index
             if p.startswith(f"{stem}-") and p.endswith(".txt")}
    return RecordedTrace(name, kind(**values), str(record["client_output"]), texts)
