"""``lab status``: what a running lab is, whether its programs run, and whether its kernel
prints what the capture it was built from shows."""

from __future__ import annotations

import os
import re
from typing import Any

from ambientlab.core.capture import Capture, load_capture
from ambientlab.core.parse import parse, to_records
from ambientlab.live.lab.plan import SECOND
from ambientlab.live.lab.record import commands
from ambientlab.live.lab.runtime import Lab, namespaces_with_prefix
from ambientlab.live.outputs import clean_output, netnsid_names


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


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


def differences(lab: Lab) -> dict[str, str]:
    """Return {capture path: :func:`verdict`} for every node/ztunnel file that both the lab and
    its source capture have (iptables-save date lines and trailing blanks aside)."""
    out = {}
    for prefix in ("", SECOND) if lab.state.get("second_capture") else ("",):
        source = load_capture(lab.state["second_capture"] if prefix else lab.state["capture"])
        for path, (host, argv, parser) in commands(lab, prefix).items():
            if path in source.files.index:
                mine = clean_output(lab.run(host, *argv))
                if argv[:2] == ["ip", "addr"]:
                    mine = netnsid_names(lab.ns, host, mine)
                out[prefix + path] = verdict(source, path, parser, mine, f"lab {host}: {' '.join(argv)}")
    return out


def status(lab: Lab) -> dict[str, Any]:
    """Return the lab's description: prefix, capture, tunnel, behaviour, namespaces, processes
    (alive or not), broken pieces, build time, and :func:`differences`."""
    return {
        "prefix": lab.prefix,
        "capture": lab.state["capture"] + (f" + {lab.state['second_capture']} (hosts {SECOND}…)"
                                           if lab.state.get("second_capture") else ""),
        "tunnel": lab.state["tunnel"],
        "ztunnel stand-in": lab.state["behaviour"],
        "namespaces": namespaces_with_prefix(lab.prefix),
        "processes": {name: ("running" if _alive(p["pid"]) else "stopped") for name, p in
                      lab.state["processes"].items()},
        "broken": [b["piece"] for b in lab.state["breaks"]],
        "build seconds": lab.state.get("build_seconds"),
        "compared with the capture": differences(lab),
    }
