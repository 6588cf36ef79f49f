"""Which capture a chapter reads: the book's own, or yours.

Set ``AMBIENTLAB_CAPTURE`` (a capture name under ``data/``, or a folder, e.g. one written by
``ambientlab capture``) and re-run a chapter: :func:`chapter_capture` hands it that capture
instead of the book's. A chapter says what it needs: the files it reads and, for chapters
that follow the demo's own pods and addresses (the packet walks), that the capture has the
same node layout. What is missing is named in one clear error, before any cell fails
somewhere deeper.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from ambientlab.core.capture import Capture, list_captures, load_capture
from ambientlab.core.constants import DEMO
from ambientlab.core.parse import to_records

VARIABLE = "AMBIENTLAB_CAPTURE"


class CaptureMismatch(RuntimeError):
    """The capture chosen by ``AMBIENTLAB_CAPTURE`` cannot serve this chapter; the message
    says what is missing and what to do."""


def node_pods(capture: Capture) -> set[str]:
    """Return the addresses the node routes to its pods (``scope host`` /32 routes of its main
    table): the node's layout, as the node itself records it."""
    path = "node/ip-route-table-main.txt"
    if path not in capture.files.index:
        return set()
    return {str(r["dst"]) for r in to_records("ip-route", capture.parse(path))
            if r.get("scope") == "host" and "gateway" not in r}


def chapter_capture(default: str, needs: Sequence[str] = (), layout: bool = False) -> Capture:
    """Return the capture a chapter reads: ``$AMBIENTLAB_CAPTURE`` if set, else ``default``.

    With another capture than ``default``, raise :class:`CaptureMismatch` if it lacks a file
    of ``needs`` or, with ``layout``, if its node's pods are not the default's (the chapter's
    walks name the demo's pods and addresses).
    """
    chosen = os.environ.get(VARIABLE, "").strip() or default
    try:
        capture = load_capture(chosen)
    except FileNotFoundError:
        if chosen == default:
            raise
        raise CaptureMismatch(f"{VARIABLE}={chosen}: there is no capture of that name under data/ ({', '.join(list_captures())}) "
                              f"and no folder {chosen} with a manifest.yaml; unset {VARIABLE} to read {default}") from None
    lost = [p for p in capture.files.index if not (capture.root / p).is_file()]
    if lost:
        raise CaptureMismatch(f"capture {capture.name} lists {len(lost)} file(s) that are missing from {capture.root}: "
                              f"{', '.join(lost[:5])}{' …' if len(lost) > 5 else ''}; `ambientlab data {capture.name}` checks it")
    for path in capture.files.index:
        capture.text(path)  # a file changed since it was recorded is refused here, by name
    if capture.name == default and chosen == default:
        return capture
    missing = [p for p in needs if p not in capture.files.index]
    advice = f"record them with `ambientlab capture` (README), or unset {VARIABLE} to read {default}"
    if missing:
        raise CaptureMismatch(f"{VARIABLE}={chosen}: this chapter reads {', '.join(missing)}, which capture "
                              f"{capture.name} does not have; {advice}")
    if layout:
        want, have = node_pods(load_capture(default)), node_pods(capture)
        if not want <= have:
            raise CaptureMismatch(
                f"{VARIABLE}={chosen}: this chapter walks the packets of {default}'s pods "
                f"({', '.join(sorted(want))}); capture {capture.name}'s node routes to "
                f"{', '.join(sorted(have)) or 'no pods it records'}. Its other chapters (the cluster, the ipset) "
                f"read any capture; for this one unset {VARIABLE}")
    return capture


@dataclass(frozen=True)
class Chapter:
    """What a chapter reads: its capture, the files it needs from it, and whether it walks the
    demo's own pods (then another capture must have the same node layout)."""

    capture: str
    needs: tuple[str, ...] = ()
    layout: bool = False


CHAPTERS: dict[str, Chapter] = {
    "01": Chapter(DEMO, ("cluster/kubectl-get-nodes.txt", "cluster/kubectl-get-pods-ambient-worker2.txt",
                         "cluster/kubectl-get-pods-ztunnel.txt", "node/ip-rule.txt", "node/ipset-list.txt")),
    "02": Chapter(DEMO, ("node/ip-rule.txt", "node/iptables-save.txt"), layout=True),
    "03": Chapter(DEMO, ("cluster/kubectl-get-pods-ambient-worker2.txt", "cluster/kubectl-get-pods-ztunnel.txt",
                         "node/ipset-list.txt")),
    "04": Chapter(DEMO, ("node/ipset-list.txt", "node/iptables-save-mangle-excerpt.txt",
                         "node/iptables-save-nat-excerpt.txt", "node/iptables-save.txt"), layout=True),
    "05": Chapter(DEMO, ("node/ip-rule.txt",), layout=True),
    "06": Chapter(DEMO, ("node/ip-d-link-istioin.txt", "node/ip-d-link-istioout.txt", "ztunnel/ip-d-link-pistioin.txt",
                         "ztunnel/ip-d-link-pistioout.txt"), layout=True),
    "07": Chapter(DEMO, ("ztunnel/ip-rule.txt", "ztunnel/iptables-save-grep-pistio.txt", "ztunnel/iptables-save.txt"),
                  layout=True),
    "08": Chapter(DEMO, layout=True),
    "09": Chapter(DEMO, ("cluster/kubectl-get-pods-ztunnel.txt",), layout=True),
    "10": Chapter(DEMO, layout=True),
    "11": Chapter(DEMO, layout=True),
    "12": Chapter(DEMO, ("node/ip-addr-grep-istioout.txt", "node/ip-route-table-101.txt", "node/ip-rule.txt",
                         "node/ipset-list.txt", "ztunnel/ip-addr.txt", "ztunnel/iptables-save-grep-pistio.txt"),
                  layout=True),
    "13": Chapter(DEMO, ("node/ip-rule.txt",), layout=True),
    "14": Chapter(DEMO, layout=True),
    "15": Chapter(DEMO, layout=True),
}
