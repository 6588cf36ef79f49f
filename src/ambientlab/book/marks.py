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
_KUBE = "kubernetes/kubernetes pkg/proxy/iptables/proxier.go (a later release's copy; v1.25.0 named, not read)"
# What each mark means, keyed by (kind, "VALUE/MASK" as the rules print it), with its source.
MEANINGS: dict[tuple[str, str], tuple[str, str]] = {
    (PACKET, "0x4000/0x4000"): ("kube-proxy's masquerade mark: KUBE-MARK-MASQ sets it, KUBE-POSTROUTING masquerades a "
                                "packet that carries it", _KUBE),
    (PACKET, "0x4000/0x0"): ("kube-proxy clearing its masquerade mark (an XOR of 0x4000) in KUBE-POSTROUTING, before it "
                             "masquerades the packet, so that the mark does not leave the node", _KUBE),
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
    (CONN, "0x220/0x220"): ("a connection whose first packet carried 0x220 through FORWARD or INPUT (saved there): "
                            "one ztunnel opened from its own address, and also any UDP flow through the node "
                            "(PRE-13 marks all UDP but geneve's 0x220, FWD-1 saves it: a pod's DNS query too); its "
                            "later packets and replies get 0x200, so they are never captured", _NODE),
    (CONN, "0x210/0x210"): ("a connection ztunnel opened with a borrowed source: replies that arrive elsewhere get "
                            "0x40 and go back to ztunnel", _NODE),
    (PACKET, "0x400/0xfff"): ("in the ztunnel pod, whose masks are 0xfff (12-bit numbers, not flags): TPROXY "
                              "handed the packet to a ztunnel listener (15001, 15006 or 15008): table 100 "
                              "delivers every address locally", _ZT),
    (PACKET, "0x4d3/0xfff"): ("the number 1235 (ORG_SRC_RET_MARK), not a set of bits: TCP arriving on eth0 for an "
                              "address that is not the pod's own, i.e. a reply to a connection ztunnel opened with "
                              "somebody else's address; table 100 delivers it locally to ztunnel's transparent "
                              "socket. Node rules (ip rule 102's 0x40/0x40) do not apply here: another host", _ZT),
    (PACKET, "0x4d2/0xfff"): ("set by no rule: the number 1234, the mark Envoy's original_src filter puts on every "
                              "onward connection ztunnel opens from the downstream peer's address (its own when it "
                              "serves a mesh pod of its node itself; the other node's ztunnel's for HBONE from there; "
                              "a client's for plaintext from outside the mesh). It exists "
                              "so that a rule could route such connections' replies back to ztunnel, but no rule or "
                              "ip rule here selects it (the 2022 script defines PROXY_ORG_SRC_MARK=0x4d2/0xfff and "
                              "never uses it): main routes it out eth0, and 0x4d3 catches the replies instead", _ZTGEN),
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

# Marks that ztunnel's sockets set though no rule and no ip rule of the capture reads them, so the
# rules alone cannot find them: each is listed on a host whose ip rules select its companion mark.
SOCKET_ONLY: dict[tuple[str, str], tuple[str, str]] = {
    (PACKET, "0x4d2/0xfff"): (PACKET, "0x401/0xfff"),
}
SOCKET = "(no rule: a socket's mark, SO_MARK)"
LOOPED = " (only if looped back through lo)"
# The hooks a packet can still pass, on the same host, after a mark is set at a hook ("socket":
# by the sending socket, before OUTPUT); a packet sent to the host itself comes back through lo
# and passes PREROUTING and INPUT as well.
LATER: dict[str, set[str]] = {
    "PREROUTING": {"PREROUTING", "INPUT", "FORWARD", "POSTROUTING"},
    "INPUT": {"INPUT"},
    "FORWARD": {"FORWARD", "POSTROUTING"},
    "OUTPUT": {"OUTPUT", "POSTROUTING"},
    "POSTROUTING": {"POSTROUTING"},
    "socket": {"OUTPUT", "POSTROUTING"},
}
_LOOPBACK = {"PREROUTING", "INPUT"}


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


def _bits(value: int, mask: int) -> str:
    """Return the bits of ``value``, or, when the rules compare it under a mask that is neither the
    value itself nor all ones (the ztunnel pod's ``0xfff``), the whole number: there it is a value,
    not a set of flags."""
    if mask not in (value, 0xFFFFFFFF):
        return f"the number {value} (mask {mask:#x})"
    return " + ".join(f"{1 << b:#x}" for b in range(31, -1, -1) if value >> b & 1) or "none"


def _routing(rules: list[Rule], tables: dict[int, Any], value: int) -> tuple[str, str]:
    """Return (the ip rule that decides for a packet whose mark is exactly ``value`` and the
    table it leads to, as "ip rule 101 → table 101" or, after a ``goto``, "ip rule 100 (goto
    32766) → table main": the goto rule decides, the lookup continues at its target; and that
    table's default route or why it has none)."""
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
        # after a goto, the goto rule decided; the lookup only continues at this rule
        steps.append(f"table {table}" if steps else f"ip rule {rule.priority} → table {table}")
        routes = tables[rule.table].routes if rule.table in tables else []
        default = next((r for r in routes if r.length == 0), None)
        if default is None:
            return " → ".join(steps), f"no default route: {len(routes)} routes, else the next rules"
        from ambientlab.core.parse.ip_route import render_route

        return " → ".join(steps), render_route(default.record)


def hooks_of(rules: pd.DataFrame) -> dict[str, set[str]]:
    """Return, for every chain of ``rules`` (a parsed ``iptables-save``), the built-in hooks
    (``PREROUTING``…) it runs at: its own name for a built-in chain, else the hooks of every chain
    that jumps to it."""
    builtin = set(LATER) - {"socket"}
    jumps: dict[str, set[str]] = {}
    for _, rule in rules.iterrows():
        jumps.setdefault(str(rule["target"]), set()).add(str(rule["chain"]))
    out: dict[str, set[str]] = {}

    def find(chain: str, seen: frozenset[str]) -> set[str]:
        if chain in builtin:
            return {chain}
        return set().union(*(find(c, seen | {chain}) for c in jumps.get(chain, ()) if c not in seen))

    for chain in set(rules["chain"]):
        out[str(chain)] = find(str(chain), frozenset())
    return out


def _readers(rules: pd.DataFrame, names: dict[int, str], mark: _Mark, after: set[str] | None,
             hooks: dict[str, set[str]]) -> list[str]:
    """Return the rules whose mark (or connmark) match ``mark`` satisfies. For a packet mark set at
    the hooks ``after``, only rules the packet can still pass: those at a later hook, and those it
    passes only if it is looped back through ``lo`` (labelled :data:`LOOPED`)."""
    module = "mark" if mark.kind == PACKET else "connmark"
    later = set().union(*(LATER[h] for h in after)) if after is not None else None
    looped = bool(after and after & {"OUTPUT", "POSTROUTING", "socket"})
    out = []
    for line, rule in rules.iterrows():
        found = _match(rule["matches"], module)
        if found is None or not found[1] & mark.mask:
            continue
        value, mask, negated = found
        if (mark.value & mask) != value:
            continue
        name = ("not " if negated else "") + names[int(line)]
        at = hooks.get(str(rule["chain"]), set())
        if later is None or at & later:
            out.append(name)
        elif looped and at & _LOOPBACK:
            out.append(name + LOOPED)
    return out


def mark_sheet(capture: Capture, host: str = "node", rules_file: str = "iptables-save.txt") -> pd.DataFrame:
    """Return the mark cheat sheet of folder ``host`` of ``capture`` (``"node"``, ``"ztunnel"``,
    or an in-pod capture's pod folder): one row per mark (``kind``: packet mark or connmark,
    ``mark`` as VALUE/MASK, its ``bits``, or the whole number when the mask is
    neither the value nor all ones), with the iptables rules that set it (``set by``,
    named like ``mangle PRE-15``), the rules that match it (``read by``; ``not`` for a negated
    match; for a packet mark only rules at the hooks the packet can still pass after the hook that
    set it, :data:`LATER`, and those it passes only when looped back through ``lo``, labelled
    :data:`LOOPED`; a connmark is read by later packets at any hook), its ``meaning`` and
    ``source`` (:data:`MEANINGS`), and for a packet mark the ip rules that route a packet carrying
    exactly that mark (``routed by``, gotos followed) and the deciding table's default route
    (``table's default``). Marks that an ``ip rule`` or an iptables match reads but no iptables
    rule sets (sockets' marks), and those of :data:`SOCKET_ONLY`, have ``set by`` :data:`SOCKET`.
    The routing assumes the packet carries no other mark bits. ``rules_file``: the host's rules, by
    file name (``iptables-save-kube-proxy.txt`` for the node's with kube-proxy's reconstructed chains)."""
    saved = capture.parse(f"{host}/{rules_file}")
    rules = saved.rules
    names = {int(line): rule_name(str(r["table"]), str(r["chain"]), int(r["rule"])) for line, r in rules.iterrows()}
    hooks = hooks_of(rules)
    setters: dict[_Mark, list[str]] = {}
    set_at: dict[_Mark, set[str]] = {}
    for line, rule in rules.iterrows():
        for kind, value, mask, how in marks_set(rule.to_dict()):
            label = names[int(line)] + ("" if how in ("sets", "TPROXY sets") else f" ({how})")
            setters.setdefault(_Mark(kind, value, mask), []).append(label)
            set_at.setdefault(_Mark(kind, value, mask), set()).update(hooks.get(str(rule["chain"]), set()))
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
    for (kind, text), (with_kind, with_text) in SOCKET_ONLY.items():
        if any(m.kind == with_kind and m.text == with_text for m in setters):
            setters.setdefault(_Mark(kind, *_split(text)), [])
    rows = []
    for mark, by in setters.items():
        meaning, source = MEANINGS.get((mark.kind, mark.text), (NO_MEANING, ""))
        routed, default = _routing(fib.rules, fib.tables, mark.value) if mark.kind == PACKET else ("", "")
        after = None if mark.kind == CONN else set_at.get(mark, set()) | ({"socket"} if not by else set())
        rows.append({"kind": mark.kind, "mark": mark.text, "bits": _bits(mark.value, mark.mask),
                     "set by": ", ".join(by) or (SOCKET if mark.kind == PACKET else ""),
                     "read by": ", ".join(_readers(rules, names, mark, after, hooks)), "meaning": meaning,
                     "routed by": routed, "table's default": default, "source": source})
    frame = pd.DataFrame(rows, columns=["kind", "mark", "bits", "set by", "read by", "meaning", "routed by",
                                        "table's default", "source"])
    order = frame["kind"].map({PACKET: 0, CONN: 1})
    return frame.assign(_o=order).sort_values(["_o", "mark"], kind="stable").drop(columns="_o").reset_index(drop=True)
