"""Addresses as sets and networks (netaddr), for the chapters' membership and prefix questions.

The parsers and the tracer keep addresses as integers for speed; this module is only for the
reader's questions ("is this pod in the mesh?"), never on the parsers' path.
"""

from __future__ import annotations

import netaddr
import pandas as pd

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


def route_tables(capture: Capture, numbers: tuple[int, ...] = (100, 101, 102),
                 hosts: tuple[str, ...] = ("node", "ztunnel")) -> pd.DataFrame:
    """Return the recorded route tables ``numbers`` of each host in ``hosts`` side by side: one
    row per (``table``, ``line``), one column per host holding that host's route line as
    recorded in ``HOST/ip-route-table-N.txt`` ("" where the host's table has fewer lines,
    "(no such file)" where the capture has none). The same number names a different table on
    each host: the frame puts them next to each other so that nobody mixes them up."""
    rows: dict[tuple[int, int], dict[str, str]] = {}
    for host in hosts:
        for number in numbers:
            path = f"{host}/ip-route-table-{number}.txt"
            try:
                lines = [line for line in capture.text(path).splitlines() if line.strip()]
            except (KeyError, FileNotFoundError):
                lines = ["(no such file)"]
            for i, line in enumerate(lines, start=1):
                rows.setdefault((number, i), {})[host] = line
    frame = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(hosts)).fillna("")
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["table", "line"])
    return frame.sort_index()


def veth_owners(capture: Capture, host: str = "node") -> dict[str, str]:
    """Return, for every device that a host route (a ``/32`` destination) of ``host``'s main
    table names, the pod at that address as ``"NAME (ADDRESS)"``: the pod names come from the
    capture's ``cluster/kubectl-get-pods-*.txt`` lists, and a device whose address no list has
    gets the address alone."""
    names: dict[str, str] = {}
    for path in sorted(capture.root.glob("cluster/kubectl-get-pods-*.txt")):
        pods = capture.parse(f"cluster/{path.name}")
        names.update(dict(zip(pods["IP"], pods["NAME"], strict=True)))
    main = capture.parse(f"{host}/ip-route-table-main.txt")
    out: dict[str, str] = {}
    for dst, dev in zip(main["dst"], main["dev"], strict=True):
        if isinstance(dst, str) and "/" not in dst and dst != "default" and isinstance(dev, str):
            out[dev] = f"{names[dst]} ({dst})" if dst in names else dst
    return out
