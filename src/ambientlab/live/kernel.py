"""Ask a real kernel: ``ip -force -batch`` route get in a namespace, and agreement checks."""

from __future__ import annotations

from typing import Any

from ambientlab.core.parse.ip_route import parse_ip_route_records
from ambientlab.core.trace.batch import Query, answer, public
from ambientlab.core.trace.host import Host
from ambientlab.live.netns import NamespaceSet


def kernel_answers(ns: NamespaceSet, name: str, queries: list[Query]) -> list[dict[str, Any]]:
    """Return the kernel's answer records (errors as ``{"error": …}``) to ``queries`` in
    namespace ``name``, from one ``ip -force -batch`` run."""
    batch = "".join(q.line() + "\n" for q in queries)
    text = ns.run(name, "sh", "-c", "ip -force -batch - 2>&1", stdin=batch, check=False)
    records, _ = parse_ip_route_records(text, f"{ns.full(name)}: ip -batch", allow_errors=True)
    for rec in records:
        rec.pop("failed", None)
    if len(records) != len(queries):
        raise RuntimeError(f"{len(queries)} queries but {len(records)} answers from the kernel")
    return records


def agrees(mine: dict[str, Any], kernel: dict[str, Any]) -> bool:
    """Return True if the tracer's full answer ``mine`` equals the kernel's record.

    For a multipath route the kernel picks a next hop by a keyed hash; any of the route's next
    hops is then accepted.
    """
    shown = public(mine)
    if shown == kernel:
        return True
    candidates = mine.get("_candidates")
    if not candidates:
        return False
    rest = {k: v for k, v in shown.items() if k not in ("gateway", "dev")}
    theirs = {k: v for k, v in kernel.items() if k not in ("gateway", "dev")}
    return rest == theirs and (kernel.get("gateway"), kernel.get("dev")) in candidates


def disagreements(host: Host, ns: NamespaceSet, name: str, queries: list[Query]) -> list[str]:
    """Return one line per query where ``host`` and the kernel in ``name`` answer differently."""
    out = []
    for query, kernel in zip(queries, kernel_answers(ns, name, queries), strict=True):
        mine = answer(host, query)
        if not agrees(mine, kernel):
            out.append(f"{query.line()}\n  tracer: {public(mine)}\n  kernel: {kernel}")
    return out
