"""The named walks of every design in one registry, and the one way to play them.

A walk is a short scenario: the packets one connection sends, in order, each followed hop by
hop through the node's recorded rules and routes. The 2022 node-level walks
(:mod:`ambientlab.core.trace.scenarios`) play on the node built from a capture of that design
(:func:`~ambientlab.core.trace.demo.demo_network`); the in-pod walks
(:mod:`ambientlab.core.trace.inpod`) on the pods of an in-pod capture of their version: ``inpod-*``
on 1.22's TPROXY rules, ``redirect-*`` on today's REDIRECT rules (:func:`unfit_for` tells them
apart by :func:`~ambientlab.core.redirection.classify`). A 2022 walk can be played
with pieces of the node removed (:data:`ambientlab.core.trace.breaks.PIECES`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from ambientlab.core.capture import Capture
from ambientlab.core.redirection import IN_POD, IN_POD_REDIRECT, NODE_LEVEL, capture_rules, classify
from ambientlab.core.trace import inpod, kubeproxy, scenarios
from ambientlab.core.trace.breaks import PIECES
from ambientlab.core.trace.demo import demo_network
from ambientlab.core.trace.network import Network
from ambientlab.core.trace.scenarios import Send, play


@dataclass(frozen=True)
class Walk:
    """One named walk: its design, the network it plays on, and the packets it sends."""

    name: str
    design: str  # NODE_LEVEL, IN_POD or IN_POD_REDIRECT
    network: Callable[[Capture], Network]
    sends: Callable[[Network], list[Send]]

    @property
    def doc(self) -> str:
        """Return what the walk shows, in one or two sentences."""
        return " ".join((self.sends.__doc__ or "").split())


WALKS: dict[str, Walk] = {w.name: w for w in (
    Walk("same-node-vip", NODE_LEVEL, demo_network, scenarios.same_node_vip),
    Walk("cross-node-hbone", NODE_LEVEL, demo_network, scenarios.cross_node_hbone),
    Walk("inbound-remote", NODE_LEVEL, demo_network, scenarios.inbound_remote),
    Walk("borrowed-source", NODE_LEVEL, demo_network, scenarios.borrowed_source),
    Walk("pod-not-in-ipset", NODE_LEVEL, demo_network, scenarios.pod_not_in_ipset),
    Walk("kubelet", NODE_LEVEL, demo_network, scenarios.kubelet),
    Walk("ztunnel-own", NODE_LEVEL, demo_network, scenarios.ztunnel_own),
    Walk("no-socket-marks", NODE_LEVEL, demo_network, scenarios.no_socket_marks),
    Walk("service-outside-mesh-remote", NODE_LEVEL, kubeproxy.kube_proxy_network, kubeproxy.outside_mesh_remote),
    Walk("service-outside-mesh-local", NODE_LEVEL, kubeproxy.kube_proxy_network, kubeproxy.outside_mesh_local),
    Walk("service-from-node", NODE_LEVEL, kubeproxy.kube_proxy_network, kubeproxy.node_to_service),
    Walk("service-from-mesh-pod", NODE_LEVEL, kubeproxy.kube_proxy_network, kubeproxy.mesh_pod_to_service),
    Walk("inpod-outbound", IN_POD, inpod.inpod_network, inpod.outbound),
    Walk("inpod-inbound", IN_POD, inpod.inpod_network, inpod.inbound),
    Walk("inpod-same-node", IN_POD, inpod.inpod_network, inpod.same_node),
    Walk("inpod-plaintext-inbound", IN_POD, inpod.inpod_network, inpod.plaintext_inbound),
    Walk("inpod-probe", IN_POD, inpod.inpod_network, inpod.probe),
    Walk("redirect-outbound", IN_POD_REDIRECT, inpod.redirect_network, inpod.outbound),
    Walk("redirect-inbound-plaintext", IN_POD_REDIRECT, inpod.redirect_network, inpod.redirect_inbound_plaintext),
    Walk("redirect-inbound-hbone", IN_POD_REDIRECT, inpod.redirect_network, inpod.redirect_inbound_hbone),
    Walk("redirect-dns", IN_POD_REDIRECT, inpod.redirect_network, inpod.dns),
    Walk("redirect-dns-port-reuse", IN_POD_REDIRECT, inpod.redirect_network, inpod.dns_port_reuse),
    Walk("redirect-probe", IN_POD_REDIRECT, inpod.redirect_network, inpod.probe),
)}


def unfit_for(capture: Capture, design: str) -> str | None:
    """Return why ``capture`` cannot be walked in ``design`` (NODE_LEVEL needs the node's and the
    ztunnel pod's rules; IN_POD and IN_POD_REDIRECT need app pods' folders with rules of their own,
    of that version), or None if it can."""
    if design in (IN_POD, IN_POD_REDIRECT):
        if not set(inpod.pod_folders(capture)) - {"ztunnel"}:
            return "has no pod folders with rules of their own (read an in-pod capture, e.g. inpod-1.22-ambient-worker2)"
        found = classify(capture_rules(capture)).design
        if found != design:
            example = "inpod-1.22-ambient-worker2" if design == IN_POD else "inpod-redirect-ambient-worker2"
            return f"holds {found} rules (read a capture with {design} rules, e.g. {example})"
    needed = ("node/iptables-save.txt", "ztunnel/iptables-save.txt")
    if design == NODE_LEVEL and not all(p in capture.files.index for p in needed):
        return f"lacks {' or '.join(needed)} (read a 2022 capture, e.g. kind-2022-ambient-worker2)"
    return None


def walk(capture: Capture, name: str, without: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Return the hop table of walk ``name`` (a key of :data:`WALKS`) played on ``capture``, with
    the pieces ``without`` (keys of :data:`~ambientlab.core.trace.breaks.PIECES`, 2022 walks
    only) removed first.

    One row per hop. Columns: packet (``N label``), host, hook (a netfilter hook, ``routing``,
    ``wire`` or ``deliver``), where (table and chain, ``ip rule``, routing table…), matched
    (the rule or route), line (file and line in the capture), mark before/after, conntrack
    mark, iif, oif, headers. The frame's ``attrs`` name the capture, the walk and the pieces
    removed (comma-separated). A KeyError names the known walks or pieces; a ValueError says why
    the capture does not fit the walk's design.
    """
    if name not in WALKS:
        raise KeyError(f"unknown walk {name!r}; known: {', '.join(WALKS)}")
    spec = WALKS[name]
    pieces = [without] if isinstance(without, str) else list(without or ())
    unknown = [p for p in pieces if p not in PIECES]
    if unknown:
        raise KeyError(f"unknown piece(s) {', '.join(unknown)}; known: {', '.join(PIECES)}")
    if pieces and spec.design != NODE_LEVEL:
        raise ValueError(f"pieces can be removed from the 2022 node-level walks only, not from {name}")
    unfit = unfit_for(capture, spec.design)
    if unfit:
        raise ValueError(f"{name} is a {spec.design} walk, and capture {capture.name} {unfit}")
    net = spec.network(capture)
    for piece in pieces:
        PIECES[piece].remove(net)
    frame = play(net, spec.sends(net))
    frame.attrs.update(capture=capture.name, walk=name, without=",".join(pieces))
    return frame


def outcomes(capture: Capture, name: str, without: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Return, for each packet of walk ``name`` with piece ``without`` removed, where it ended:
    its last hop (columns host, hook, ends), indexed by packet."""
    last = walk(capture, name, without).groupby("packet", sort=False).tail(1)
    return last.set_index("packet")[["host", "hook", "matched"]].rename(columns={"matched": "ends"})


def packet_numbers(frame: pd.DataFrame) -> dict[int, str]:
    """Return {number: label} of the packets of hop table ``frame``, in the order they were sent."""
    return {int(str(label).split(" ", 1)[0]): str(label) for label in frame["packet"].drop_duplicates()}


def packet_hops(frame: pd.DataFrame, packet: int | str) -> pd.DataFrame:
    """Return the rows of hop table ``frame`` for one packet, named by its number (``2``) or its
    full label (``"2 SYN-ACK …"``); a KeyError lists the packets there are."""
    numbers = packet_numbers(frame)
    label = numbers.get(packet) if isinstance(packet, int) else packet if packet in numbers.values() else None
    if label is None:
        raise KeyError(f"no packet {packet!r}; the packets are: " + "; ".join(numbers.values()))
    return frame[frame["packet"] == label]
