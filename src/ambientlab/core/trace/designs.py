"""The two designs side by side: for each job both do (an app's SYN reaching ztunnel, HBONE
arriving, the borrowed source's answer, the kubelet's probe), what the 2022 node-level walk and
the 1.22 in-pod walk show, computed from the two captures."""

from __future__ import annotations

import pandas as pd

from ambientlab.core.capture import Capture
from ambientlab.core.trace.demo import WORLD
from ambientlab.core.trace.walks import packet_hops, walk

# The jobs both designs do, each as (2022 walk, its packet, in-pod walk, its packet).
JOBS = {
    "an app's outbound SYN reaches ztunnel": ("same-node-vip", 1, "inpod-outbound", 1),
    "HBONE from another node reaches ztunnel's 15008": ("inbound-remote", 1, "inpod-inbound", 1),
    "ztunnel dials the app with a borrowed source": ("inbound-remote", 3, "inpod-inbound", 3),
    "the app's answer to that source returns to ztunnel": ("inbound-remote", 4, "inpod-inbound", 4),
    "the kubelet's probe reaches the app": ("kubelet", 1, "inpod-probe", 1),
}
NETFILTER_HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


def summarize(hops: pd.DataFrame) -> dict[str, object]:
    """Return what one packet's hop table shows: where it ends, the namespaces it crosses, the
    rules that acted (LOG rules and bare jumps aside), the marks set, the routing tables (each
    named with its host: ``node 101``, ``ztunnel 100``) and the tunnels it used."""
    text = hops["matched"].astype(str)
    acting = hops[hops["hook"].isin(NETFILTER_HOOKS) & ~text.str.contains("-j LOG ")
                  & ~text.str.fullmatch(r"-j [\w-]+")]
    marks = [a for b, a in zip(hops["mark_before"], hops["mark_after"], strict=True) if a != b and a != "0x0"]
    routed = hops[hops["where"].astype(str).str.startswith("table ")]
    tables = [f"{host} {where.removeprefix('table ')}" for host, where in zip(routed["host"], routed["where"], strict=True)]
    return {
        "ends at": f"{hops['host'].iloc[-1]}: {hops['matched'].iloc[-1]}",
        "namespaces": " -> ".join(dict.fromkeys(h for h in hops["host"] if h != WORLD)),
        "rules that act": len(acting),
        "marks set": ", ".join(dict.fromkeys(marks)) or "none",
        "routing tables": ", ".join(dict.fromkeys(tables)) or "none",
        "tunnels": ", ".join(dict.fromkeys(w.split()[1] for w in hops["where"].astype(str) if w.startswith("tunnel ")))
                   or "none",
    }


def compare_designs(node_capture: Capture, inpod_capture: Capture) -> pd.DataFrame:
    """Return, for each job both designs do (:data:`JOBS`: an app's SYN reaching ztunnel, HBONE
    arriving, the borrowed source's answer, the kubelet's probe), what the 2022 walk shows next to
    what the in-pod walk shows (:func:`summarize`): one row per (job, design), computed from both
    captures."""
    walks: dict[tuple[str, str], pd.DataFrame] = {}
    rows = []
    for job, (old, old_packet, new, new_packet) in JOBS.items():
        for design, capture, scenario, packet in (("2022 node-level", node_capture, old, old_packet),
                                                  ("1.22 in-pod", inpod_capture, new, new_packet)):
            if (design, scenario) not in walks:
                walks[(design, scenario)] = walk(capture, scenario)
            hops = packet_hops(walks[(design, scenario)], packet)
            rows.append({"job": job, "design": design, "packet": hops["packet"].iloc[0], **summarize(hops)})
    return pd.DataFrame(rows).set_index(["job", "design"])
