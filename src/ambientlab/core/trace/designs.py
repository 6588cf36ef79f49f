"""The designs side by side: for each job they all do (an app's SYN reaching ztunnel, HBONE
arriving, the borrowed source's answer, the kubelet's probe), what the 2022 node-level walk, the
1.22 in-pod walk and (given today's capture) the 1.24+ REDIRECT walk show, computed from the
captures; and :func:`changes`, what changed from one design to the next, job by job."""

from __future__ import annotations

import pandas as pd

from ambientlab.core.capture import Capture
from ambientlab.core.redirection import IN_POD, IN_POD_REDIRECT, NODE_LEVEL
from ambientlab.core.trace.demo import WORLD
from ambientlab.core.trace.walks import packet_hops, walk

# The jobs every design does, each as {design: (walk, its packet)}.
JOBS: dict[str, dict[str, tuple[str, int]]] = {
    "an app's outbound SYN reaches ztunnel": {
        NODE_LEVEL: ("same-node-vip", 1), IN_POD: ("inpod-outbound", 1), IN_POD_REDIRECT: ("redirect-outbound", 1)},
    "HBONE from another node reaches ztunnel's 15008": {
        NODE_LEVEL: ("inbound-remote", 1), IN_POD: ("inpod-inbound", 1), IN_POD_REDIRECT: ("redirect-inbound-hbone", 1)},
    "ztunnel dials the app with a borrowed source": {
        NODE_LEVEL: ("inbound-remote", 3), IN_POD: ("inpod-inbound", 3), IN_POD_REDIRECT: ("redirect-inbound-hbone", 3)},
    "the app's answer to that source returns to ztunnel": {
        NODE_LEVEL: ("inbound-remote", 4), IN_POD: ("inpod-inbound", 4), IN_POD_REDIRECT: ("redirect-inbound-hbone", 4)},
    "the kubelet's probe reaches the app": {
        NODE_LEVEL: ("kubelet", 1), IN_POD: ("inpod-probe", 1), IN_POD_REDIRECT: ("redirect-probe", 1)},
}
NETFILTER_HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


def _acting(hops: pd.DataFrame) -> pd.DataFrame:
    text = hops["matched"].astype(str)
    return hops[hops["hook"].isin(NETFILTER_HOOKS) & ~text.str.contains("-j LOG ") & ~text.str.fullmatch(r"-j [\w-]+")]


def summarize(hops: pd.DataFrame) -> dict[str, object]:
    """Return what one packet's hop table shows: where it ends, the namespaces it crosses, the
    rules that acted (LOG rules and bare jumps aside), their tables and targets (``nat
    REDIRECT``…), the marks set, the routing tables (each named with its host: ``node 101``,
    ``ztunnel 100``) and the tunnels it used."""
    acting = _acting(hops)
    targets = [f"{where.split()[0]} {text.rsplit('-j ', 1)[1].split()[0]}"
               for where, text in zip(acting["where"].astype(str), acting["matched"].astype(str), strict=True)
               if "-j " in text]
    marks = [a for b, a in zip(hops["mark_before"], hops["mark_after"], strict=True) if a != b and a != "0x0"]
    routed = hops[hops["where"].astype(str).str.startswith("table ")]
    tables = [f"{host} {where.removeprefix('table ')}" for host, where in zip(routed["host"], routed["where"], strict=True)]
    return {
        # the socket only: a REDIRECTed delivery's SO_ORIGINAL_DST note is the same in both in-pod designs
        "ends at": f"{hops['host'].iloc[-1]}: {str(hops['matched'].iloc[-1]).split('; SO_ORIGINAL_DST')[0]}",
        "namespaces": " -> ".join(dict.fromkeys(h for h in hops["host"] if h != WORLD)),
        "rules that act": len(acting),
        "targets": ", ".join(dict.fromkeys(targets)) or "none",
        "marks set": ", ".join(dict.fromkeys(marks)) or "none",
        "routing tables": ", ".join(dict.fromkeys(tables)) or "none",
        "tunnels": ", ".join(dict.fromkeys(w.split()[1] for w in hops["where"].astype(str) if w.startswith("tunnel ")))
                   or "none",
    }


def compare_designs(node_capture: Capture, inpod_capture: Capture, redirect_capture: Capture | None = None) -> pd.DataFrame:
    """Return, for each job the designs share (:data:`JOBS`: an app's SYN reaching ztunnel, HBONE
    arriving, the borrowed source's answer, the kubelet's probe), what the 2022 walk shows next to
    what the 1.22 in-pod walk shows and, with ``redirect_capture`` (today's rules), the 1.24+
    REDIRECT walk (:func:`summarize`): one row per (job, design), computed from the captures."""
    captures = {NODE_LEVEL: node_capture, IN_POD: inpod_capture}
    if redirect_capture is not None:
        captures[IN_POD_REDIRECT] = redirect_capture
    walks: dict[tuple[str, str], pd.DataFrame] = {}
    rows = []
    for job, by_design in JOBS.items():
        for design, capture in captures.items():
            scenario, packet = by_design[design]
            if (design, scenario) not in walks:
                walks[(design, scenario)] = walk(capture, scenario)
            hops = packet_hops(walks[(design, scenario)], packet)
            rows.append({"job": job, "design": design, "packet": hops["packet"].iloc[0], **summarize(hops)})
    return pd.DataFrame(rows).set_index(["job", "design"])


def changes(table: pd.DataFrame, before: str = IN_POD, after: str = IN_POD_REDIRECT) -> pd.DataFrame:
    """Return, from :func:`compare_designs`'s ``table``, each job's columns whose value differs
    between design ``before`` and design ``after``: one row per (job, column) with both values."""
    rows = []
    for job in dict.fromkeys(table.index.get_level_values("job")):
        old, new = table.loc[(job, before)], table.loc[(job, after)]
        for column in table.columns.drop("packet"):
            if old[column] != new[column]:
                rows.append({"job": job, "what": column, before: old[column], after: new[column]})
    return pd.DataFrame(rows, columns=["job", "what", before, after]).set_index(["job", "what"])
