"""``lab status``: what a running lab is, whether its programs run, and whether its kernel
prints what the capture it was built from shows."""

from __future__ import annotations

import os
from typing import Any

from ambientlab.core.capture import load_capture
from ambientlab.core.recordings import verdict
from ambientlab.core.trace.kubeproxy import KUBE_PROXY_RULES
from ambientlab.live.lab.plan import SECOND
from ambientlab.live.lab.record import commands
from ambientlab.live.lab.runtime import Lab, describe_phase, namespaces_with_prefix
from ambientlab.live.outputs import clean_output, netnsid_names


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def differences(lab: Lab) -> dict[str, str]:
    """Return {capture path: :func:`verdict`} for every node/ztunnel file that both the lab and
    its source capture have (iptables-save date lines and trailing blanks aside). In a kube-proxy
    lab the node's ``iptables-save`` is compared with the file it loaded instead; its ``ip addr``
    and main table show details-v1's veth and route, which the capture has not."""
    out = {}
    for prefix in ("", SECOND) if lab.state.get("second_capture") else ("",):
        source = load_capture(lab.state["second_capture"] if prefix else lab.state["capture"])
        for path, (host, argv, parser) in commands(lab, prefix).items():
            if path in source.files.index:
                mine = clean_output(lab.run(host, *argv))
                if argv[:2] == ["ip", "addr"]:
                    mine = netnsid_names(lab.ns, host, mine)
                # a kube-proxy lab loads the reconstruction with kube-proxy's chains in place of the node's rules
                shown = KUBE_PROXY_RULES if lab.state.get("kube_proxy") and path == "node/iptables-save.txt" else path
                out[prefix + shown] = verdict(source, shown, parser, mine, f"lab {host}: {' '.join(argv)}")
    return out


def status(lab: Lab) -> dict[str, Any]:
    """Return the lab's description: prefix, phase (``up``, or what became of its build),
    capture, tunnel, behaviour, namespaces, processes (alive or not), broken pieces, build time,
    and :func:`differences` (only for a lab that is up). A lab whose build has not finished
    shows what exists so far: the namespaces the kernel has, the programs its state records."""
    up = lab.phase == "up"
    second = lab.state.get("second_capture")
    return {
        "prefix": lab.prefix,
        "phase": describe_phase(lab),
        "capture": lab.state["capture"] + (f" + {second} (hosts {SECOND}…)" if second else ""),
        "tunnel": lab.state.get("tunnel", "(not chosen yet)"),
        "ztunnel stand-in": lab.state.get("behaviour", "(not chosen yet)"),
        "namespaces": namespaces_with_prefix(lab.prefix),
        "processes": {name: ("running" if _alive(p["pid"]) else "stopped") for name, p in
                      lab.state["processes"].items()},
        "broken": [b["piece"] for b in lab.state["breaks"]],
        "build seconds": lab.state.get("build_seconds"),
        "compared with the capture": differences(lab) if up else {},
    }
