"""Addresses as sets and networks (netaddr), for the chapters' membership and prefix questions.

The parsers and the tracer keep addresses as integers for speed; this module is only for the
reader's questions ("is this pod in the mesh?"), never on the parsers' path.
"""

from __future__ import annotations

import netaddr

from ambientlab.core.capture import Capture


def pod_set(capture: Capture, host: str = "node", name: str | None = None) -> netaddr.IPSet:
    """Return the members of ipset ``name`` (the only set of the file if None) in
    ``HOST/ipset-list.txt`` of ``capture`` as a :class:`netaddr.IPSet`, so that membership is
    ``"10.244.2.3" in pod_set(demo)``."""
    members = capture.parse(f"{host}/ipset-list.txt").members
    names = sorted(set(members["set"]))
    if name is None:
        if len(names) != 1:
            raise ValueError(f"{capture.name}/{host}/ipset-list.txt has sets {names}: name one")
        name = names[0]
    if name not in names:
        raise KeyError(f"no ipset {name!r} in {capture.name}/{host}/ipset-list.txt; sets: {names}")
    return netaddr.IPSet(members.loc[members["set"] == name, "elem"])
