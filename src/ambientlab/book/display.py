"""What chapters print: a recorded file with its command and provenance."""

from __future__ import annotations

import textwrap

import pandas as pd

from ambientlab.core.capture import Capture
from ambientlab.core.trace.walks import packet_hops

ORIGIN_WORDS = {
    "recorded": "recorded on the 2022 cluster",
    "excerpt": "an excerpt published from the 2022 cluster",
    "reconstructed": "reconstructed from upstream source",
    "lab": "recorded on the live lab",
}


def provenance(capture: Capture, path: str) -> str:
    """Return one line saying where ``path`` comes from (origin, source or basis)."""
    entry = capture.entry(path)
    origin = entry["origin"]
    if origin in ("recorded", "excerpt"):
        where = capture.manifest.get("sources", {}).get(entry["source"], entry["source"])
    elif origin == "lab":
        lab = capture.manifest.get("lab", {})
        where = (f"built from {lab.get('built_from', '?')} with {lab.get('tunnel', '?')} tunnels, kernel "
                 f"{lab.get('kernel', '?')}, {lab.get('iproute2', '?')}, recorded {lab.get('recorded', '?')}")
    else:
        where = entry.get("basis", "")
    return f"[{origin}] {ORIGIN_WORDS[origin]}: {where}"


def show(capture: Capture, path: str) -> None:
    """Print the command that produced ``path``, its text, and its provenance line."""
    entry = capture.entry(path)
    print(f"$ {entry['command']}    # on {entry['host']}")
    print(capture.text(path).rstrip("\n"))
    print()
    print(textwrap.fill(provenance(capture, path), width=88, subsequent_indent="    "))


HOP_VIEW = ["host", "hook", "where", "matched", "mark", "ctmark", "dev"]


def hops(frame: pd.DataFrame, packet: int | str | None = None, *, quiet: bool = True) -> pd.DataFrame:
    """Return the hop table of a walk, or of one of its packets (by number, or by full label),
    for reading.

    With ``quiet``, rows of LOG rules and of bare jumps into Istio's chains (``-j ztunnel-…`` in
    2022, ``-j ISTIO_…`` in-pod, with no match) are left out: they match every packet and decide
    nothing. Marks and devices are shown as text, empty where they do not apply.
    """
    if packet is not None:
        frame = packet_hops(frame, packet)
    if quiet:
        text = frame["matched"].astype(str)
        frame = frame[~(text.str.contains(" -j LOG ") | text.str.startswith("-j LOG ") | text.str.fullmatch(r"-j (?:ztunnel-|ISTIO_)\S+"))]
    view = frame.assign(
        mark=[after if before == after else f"{before} → {after}"
              for before, after in zip(frame["mark_before"], frame["mark_after"], strict=True)],
        dev=frame["oif"].where(frame["where"].astype(str).str.startswith("table ")),
    )[HOP_VIEW]
    return view.astype(object).where(view.notna(), "")
