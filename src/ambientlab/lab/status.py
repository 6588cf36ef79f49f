"""``lab status``: what a running lab is, whether its programs run, and whether its kernel
prints what the capture it was built from shows."""

from __future__ import annotations

import os
from typing import Any

from ambientlab.capture import load_capture
from ambientlab.lab.record import commands
from ambientlab.lab.runtime import Lab, namespaces_with_prefix
from ambientlab.parse import parse, to_records
from ambientlab.reconstruct import clean_output, netnsid_names


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def differences(lab: Lab) -> dict[str, str]:
    """Return {capture path: verdict} for every node/ztunnel file that both the lab and its
    source capture have: ``same text`` (iptables-save date lines and trailing blanks aside),
    ``same members`` for an ipset (revision, hash seed, order and size in memory depend on the
    kernel), ``same id, remote, port`` for a tunnel (a stand-in type prints other details), or
    ``DIFFERENT``."""
    source = load_capture(lab.state["capture"])
    out = {}
    for path, (host, argv, parser) in commands(lab).items():
        if path not in source.files.index:
            continue
        mine = clean_output(lab.run(host, *argv))
        if argv[:2] == ["ip", "addr"]:
            mine = netnsid_names(lab.ns, host, mine)
        if mine == source.text(path):
            out[path] = "same text"
        elif parser == "ipset":
            ours, theirs = (frame.members[["set", "elem"]] for frame in
                            (parse("ipset", mine, f"lab {host}: ipset list"), source.parse(path)))
            same = set(map(tuple, ours.to_numpy().tolist())) == set(map(tuple, theirs.to_numpy().tolist()))
            out[path] = "same members" if same else "DIFFERENT"
        elif parser == "ip-link":
            ours_l, theirs_l = (to_records("ip-link", f) for f in
                                (parse("ip-link", mine, f"lab {host}: {' '.join(argv)}"), source.parse(path)))
            keys = ("id", "remote", "port")
            same = [{k: r["linkinfo"]["info_data"].get(k) for k in keys} for r in ours_l] == \
                [{k: r["linkinfo"]["info_data"].get(k) for k in keys} for r in theirs_l]
            out[path] = "same id, remote, port" if same else "DIFFERENT"
        else:
            out[path] = "DIFFERENT"
    return out


def status(lab: Lab) -> dict[str, Any]:
    """Return the lab's description: prefix, capture, tunnel, behaviour, namespaces, processes
    (alive or not), broken pieces, build time, and :func:`differences`."""
    return {
        "prefix": lab.prefix,
        "capture": lab.state["capture"],
        "tunnel": lab.state["tunnel"],
        "ztunnel stand-in": lab.state["behaviour"],
        "namespaces": namespaces_with_prefix(lab.prefix),
        "processes": {name: ("running" if _alive(p["pid"]) else "stopped") for name, p in
                      lab.state["processes"].items()},
        "broken": [b["piece"] for b in lab.state["breaks"]],
        "build seconds": lab.state.get("build_seconds"),
        "compared with the capture": differences(lab),
    }
