"""The mark cheat sheet: every mark one host's rules set, who sets it, what it means, and where
policy routing sends a packet that carries it.

:func:`mark_sheet` computes the sheet from a capture: the marks come from the host's
``iptables-save`` (``MARK``, ``TPROXY --tproxy-mark``, ``CONNMARK``) and from its ``ip rule``
(an ``fwmark`` that no rule sets is a socket's mark), the rules are named with
:func:`~ambientlab.core.trace.names.rule_name`, and the routing is the host's own rules matched
by the tracer. Only the meaning is text: :data:`MEANINGS`, with its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ambientlab.core.capture import Capture
from ambientlab.core.trace import host_from_capture, ipv4
from ambientlab.core.trace.fib import Flow, Rule
from ambientlab.core.trace.names import rule_name

PACKET, CONN = "packet mark", "connmark"
NO_MEANING = "(not in the book's table of meanings: ambientlab.book.marks.MEANINGS)"

_NODE = "istio/istio 191fe680 cni/pkg/ambient/net.go"
_ZT = "istio/istio 191fe680 manifests/charts/istio-control/istio-discovery/templates/ambient.yaml"
_ZTGEN = "istio/istio 191fe680 pilot/pkg/networking/ambientgen/ztunnelgen.go"
_INPOD = "istio/istio 1.22.0 cni/pkg/iptables/iptables.go"
# What each mark means, keyed by (kind, "VALUE/MASK" as the rules print it), with its source.
MEANINGS: dict[tuple[str, str], tuple[str, str]] = {
    (PACKET, "0x100/0x100"): ("captured: TCP from a mesh pod of this node, on its way to ztunnel through istioout", _NODE),
    (PACKET, "0x200/0x200"): ("leave alone: it came out of a tunnel from ztunnel, or belongs to a connection of "
                              "ztunnel's own (connmark 0x220); routed by main, as without ambient", _NODE),
    (PACKET, "0x210/0x210"): ("ztunnel speaks with a borrowed source (an address that is not its own): routed by main; "
                              "FORWARD and INPUT save it in the connmark", _NODE),
    (PACKET, "0x220/0x220"): ("ztunnel's own traffic (from its veth with its own address), and UDP other than geneve's: "
                              "routed by main; FORWARD and INPUT save it in the connmark", _NODE),
    (PACKET, "0x220/0xffffffff"): ("what the node itself sends from its address on the pods' veths (10.244.2.1 on "
                                   "the demo node: kubelet's probes, the tunnels' outer packets): the whole mark "
                                   "becomes 0x220, routed by main; OUTPUT saves no connmark",
                                   _NODE),
    (PACKET, "0x40/0x40"): ("a reply on a connection ztunnel opened with a borrowed source: must go back to ztunnel "
                            "(table 102), even when its destination is a local pod", _NODE),
    (CONN, "0x220/0x220"): ("a connection ztunnel opened from its own address (saved in FORWARD or INPUT): its "
                            "replies get 0x200, so they are never captured", _NODE),
    (CONN, "0x210/0x210"): ("a connection ztunnel opened with a borrowed source: replies that arrive elsewhere get "
                            "0x40 and go back to ztunnel", _NODE),
    (PACKET, "0x400/0xfff"): ("TPROXY handed the packet to a ztunnel listener (15001, 15006 or 15008): table 100 "
                              "delivers every address locally", _ZT),
    (PACKET, "0x4d3/0xfff"): ("a reply, arriving on eth0, for a connection ztunnel opened with a borrowed source: "
                              "delivered locally to ztunnel's transparent socket", _ZT),
    (PACKET, "0x401/0xfff"): ("set by no rule: ztunnel's 15001 (outbound) listener's socket mark (SO_MARK); answers "
                              "go back into pistioout", _ZTGEN),
    (PACKET, "0x402/0xfff"): ("set by no rule: ztunnel's 15006 and 15008 (inbound) listeners' socket mark (SO_MARK); "
                              "answers go back into pistioin", _ZTGEN),
    (PACKET, "0x111/0xfff"): ("in-pod: TPROXY handed the packet to ztunnel's 15006 or 15008 listener, or the app's "
                              "reply on such a connection (restored from the connmark): table 100 delivers it "
                              "locally", _INPOD),
    (CONN, "0x111/0xfff"): ("in-pod: a connection whose packets came from ztunnel's own sockets (mark 0x539): the "
                            "app's replies get mark 0x111 back in OUTPUT, so they stay in the pod and reach ztunnel",
                            _INPOD),
    (PACKET, "0x539/0xfff"): ("in-pod: set by no rule: ztunnel's own sockets in the pod (SO_MARK 1337), which "
                              "exempts them from capture", _INPOD),
}


@dataclass(frozen=True)
class _Mark:
    kind: str
    value: int
    mask: int

    @property
    def text(self) -> str:
        return f"{self.value:#x}/{self.mask:#x}"


def _opts(options: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {o["option"]: o["args"] for o in options}


def _split(spec: str) -> tuple[int, int]:
    value, _, mask = spec.partition("/")
    return int(value, 16), int(mask, 16) if mask else 0xFFFFFFFF


def _match(matches: list[dict[str, Any]], module: str) -> tuple[int, int, bool] | None:
    """Return (value, mask, negated) of a rule's ``-m mark --mark`` (or connmark) match."""
    for match in matches:
        if match["module"] == module:
            for opt in match["options"]:
                if opt["option"] == "--mark":
                    value, mask = _split(opt["args"][0])
                    return value, mask, bool(opt["negated"])
    return None


def marks_set(rule: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """Return the marks iptables rule ``rule`` (a row of the parsed ``iptables-save``) sets:
    (kind, value, mask, how) for ``MARK``, ``TPROXY --tproxy-mark`` and ``CONNMARK``; a save or
    restore counts when a mark match on the same rule says which value it copies."""
    target, opts = rule["target"], _opts(rule["target_options"] or [])
    spec = opts.get("--set-xmark", opts.get("--set-mark"))
    if target == "MARK" and spec:
        return [(PACKET, *_split(spec[0]), "sets")]
    if target == "TPROXY" and "--tproxy-mark" in opts:
        return [(PACKET, *_split(opts["--tproxy-mark"][0]), "TPROXY sets")]
    if target != "CONNMARK":
        return []
    if spec:
        return [(CONN, *_split(spec[0]), "sets")]
    nfmask = int(opts.get("--nfmask", opts.get("--mask", ["0xffffffff"]))[0], 16)
    ctmask = int(opts.get("--ctmask", opts.get("--mask", ["0xffffffff"]))[0], 16)
    if "--save-mark" in opts and (found := _match(rule["matches"], "mark")) and not found[2]:
        return [(CONN, found[0] & nfmask, found[1] & ctmask, "saves")]
    if "--restore-mark" in opts and (found := _match(rule["matches"], "connmark")) and not found[2]:
        return [(PACKET, found[0] & ctmask, found[1] & nfmask, "restores")]
    return []


def _bits(value: int) -> str:
    return " + ".join(f"{1 << b:#x}" for b in range(31, -1, -1) if value >> b & 1) or "none"


def _routing(rules: list[Rule], tables: dict[int, Any], value: int) -> tuple[str, str]:
    """Return (the ip rules that decide for a packet whose mark is exactly ``value``, the
    deciding table's default route or why it has none)."""
    flow = Flow(dst=0, mark=value)
    steps: list[str] = []
    i = next((k for k, r in enumerate(rules) if r.priority > 0 and r.markmask and r.matches(flow)), None)
    if i is None:  # no rule selects this mark: it is routed as if unmarked
        return "no ip rule selects it: routed as an unmarked packet", ""
    while True:
        rule = rules[i]
        if rule.action == "goto" and rule.target is not None:
            steps.append(f"ip rule {rule.priority} (goto {rule.table})")
            i = rule.target
            continue
        if rule.action != "lookup":
            steps.append(f"ip rule {rule.priority} ({rule.action})")
            return " → ".join(steps), ""
        table = ipv4.table_name(rule.table)
        steps.append(f"ip rule {rule.priority} → table {table}")
        routes = tables[rule.table].routes if rule.table in tables else []
        default = next((r for r in routes if r.length == 0), None)
        if default is None:
            return " → ".join(steps), f"no default route: {len(routes)} routes, else the next rules"
        from ambientlab.core.parse.ip_route import render_route

        return " → ".join(steps), render_route(default.record)


def _readers(rules: pd.DataFrame, names: dict[int, str], mark: _Mark) -> list[str]:
    module = "mark" if mark.kind == PACKET else "connmark"
    out = []
    for line, rule in rules.iterrows():
        found = _match(rule["matches"], module)
        if found is None or not found[1] & mark.mask:
            continue
        value, mask, negated = found
        if (mark.value & mask) == value:
            out.append(("not " if negated else "") + names[int(line)])
    return out


def mark_sheet(capture: Capture, host: str = "node") -> pd.DataFrame:
    """Return the mark cheat sheet of folder ``host`` of ``capture`` (``"node"``, ``"ztunnel"``,
    or an in-pod capture's pod folder): one row per mark (``kind``: packet mark or connmark,
    ``mark`` as VALUE/MASK, its ``bits``), with the iptables rules that set it (``set by``,
    named like ``mangle PRE-15``), the rules that match it (``read by``; ``not`` for a negated
    match), its ``meaning`` and ``source`` (:data:`MEANINGS`), and for a packet mark the ip rules
    that route a packet carrying exactly that mark (``routed by``, gotos followed) and the
    deciding table's default route (``table's default``). Marks that an ``ip rule`` or an
    iptables match reads but no iptables rule sets (sockets' marks) have an empty ``set by``.
    The routing assumes the packet carries no other mark bits."""
    saved = capture.parse(f"{host}/iptables-save.txt")
    rules = saved.rules
    names = {int(line): rule_name(str(r["table"]), str(r["chain"]), int(r["rule"])) for line, r in rules.iterrows()}
    setters: dict[_Mark, list[str]] = {}
    for line, rule in rules.iterrows():
        for kind, value, mask, how in marks_set(rule.to_dict()):
            label = names[int(line)] + ("" if how in ("sets", "TPROXY sets") else f" ({how})")
            setters.setdefault(_Mark(kind, value, mask), []).append(label)
    fib = host_from_capture(capture, host).fib

    def known(kind: str, value: int, mask: int) -> bool:
        return any(m.kind == kind and (m.value & mask) == value for m in setters)

    # Marks that something reads but no iptables rule sets: a socket's mark (SO_MARK)
    for rule in fib.rules:
        if rule.markmask and not known(PACKET, rule.mark, rule.markmask):
            setters.setdefault(_Mark(PACKET, rule.mark, rule.markmask), [])
    for _, rule in rules.iterrows():
        for kind, module in ((PACKET, "mark"), (CONN, "connmark")):
            found = _match(rule["matches"], module)
            if found is not None and not known(kind, found[0], found[1]):
                setters.setdefault(_Mark(kind, found[0], found[1]), [])
    rows = []
    for mark, by in setters.items():
        meaning, source = MEANINGS.get((mark.kind, mark.text), (NO_MEANING, ""))
        routed, default = _routing(fib.rules, fib.tables, mark.value) if mark.kind == PACKET else ("", "")
        rows.append({"kind": mark.kind, "mark": mark.text, "bits": _bits(mark.value), "set by": ", ".join(by),
                     "read by": ", ".join(_readers(rules, names, mark)), "meaning": meaning,
                     "routed by": routed, "table's default": default, "source": source})
    frame = pd.DataFrame(rows, columns=["kind", "mark", "bits", "set by", "read by", "meaning", "routed by",
                                        "table's default", "source"])
    order = frame["kind"].map({PACKET: 0, CONN: 1})
    return frame.assign(_o=order).sort_values(["_o", "mark"], kind="stable").drop(columns="_o").reset_index(drop=True)
