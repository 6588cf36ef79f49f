"""What the kernel tests of the in-pod labs share."""

from __future__ import annotations

import time

from ambientlab.live.lab.runtime import Lab


def accepted(lab: Lab, process: str, before: int) -> list[dict[str, object]]:
    """Return the "accepted" events that lab program ``process`` logged after its first ``before``
    events, waiting up to 2 s for the first; [] if none came."""
    for _ in range(40):
        found = [e for e in lab.events(process)[before:] if e.get("event") == "accepted"]
        if found:
            return found
        time.sleep(0.05)
    return []
