"""What chapters print: a recorded file with its command and provenance."""

from __future__ import annotations

import textwrap

from ambientlab.capture import Capture

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
