"""Which design of ambient redirection a node's (and its pods') ``iptables-save`` shows.

Three designs have shipped, each with rules of its own that give it away:

- **2022 node-level**: the node's mangle table has ztunnel's chains (``ztunnel-PREROUTING``…),
  and traffic is steered to a ztunnel pod through geneve tunnels;
- **1.22 in-pod, TPROXY**: inside each meshed pod's namespace, ``mangle ISTIO_PRERT`` TPROXYs
  inbound traffic to ztunnel's 15006/15008 (Istio 1.21 to 1.23);
- **1.24+ in-pod, REDIRECT**: inside each meshed pod's namespace, ``nat ISTIO_PRERT`` REDIRECTs
  inbound traffic to 15006 (istio/istio pull request 52622, Istio 1.24 and later).

On the node itself the two in-pod designs look alike (only the kubelet probe's SNAT to
169.254.7.127 in ``nat ISTIO_POSTRT``): a pod's own rules tell them apart. :func:`classify` reads
what it is given and says which it found, and on which line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ambientlab.core.capture import Capture
from ambientlab.core.parse.iptables import parse_iptables_save

NODE_LEVEL, IN_POD, IN_POD_REDIRECT = "2022 node-level", "1.22 in-pod", "1.24+ in-pod REDIRECT"
IN_POD_UNKNOWN = "in-pod (TPROXY or REDIRECT: the node alone does not say)"
NONE = "no ambient redirection"
DESIGNS = (NODE_LEVEL, IN_POD, IN_POD_REDIRECT)


@dataclass(frozen=True)
class Finding:
    """What :func:`classify` found: the design, and the rule that shows it (``where:line: text``)."""

    design: str
    evidence: str

    def sentence(self) -> str:
        """Return one sentence for a reader: the design found and the rule that shows it."""
        if self.design == NONE:
            return "no ambient redirection rules found (neither ztunnel's chains nor istio-cni's ISTIO_* chains)"
        return f"this cluster runs the {self.design} design: {self.evidence}"


def _rules(text: str, where: str) -> list[tuple[str, str, str | None, str, int]]:
    rules = parse_iptables_save(text, where).rules
    return [(t, c, g, x, int(n)) for t, c, g, x, n in zip(rules["table"], rules["chain"], rules["target"],
                                                        rules["text"], rules.index, strict=True)]


def classify(texts: Mapping[str, str]) -> Finding:
    """Return the design that the ``iptables-save`` outputs ``texts`` ({where: text}, e.g. the
    node's and some pods') show, with the first rule that shows it. A pod's in-pod rules decide
    (REDIRECT in ``nat ISTIO_PRERT``: 1.24+; TPROXY in ``mangle ISTIO_PRERT``: 1.22); then ztunnel's
    node-level chains; then the node's probe SNAT alone (:data:`IN_POD_UNKNOWN`); else :data:`NONE`."""
    found: dict[str, str] = {}
    for where, text in texts.items():
        for table, chain, target, rule, line in _rules(text, where):
            design = None
            if table == "nat" and chain == "ISTIO_PRERT" and target == "REDIRECT" and "15006" in rule:
                design = IN_POD_REDIRECT
            elif table == "mangle" and chain == "ISTIO_PRERT" and target == "TPROXY":
                design = IN_POD
            elif chain.startswith("ztunnel-"):
                design = NODE_LEVEL
            elif table == "nat" and chain == "ISTIO_POSTRT" and target == "SNAT" and "169.254.7.127" in rule:
                design = IN_POD_UNKNOWN
            if design is not None and design not in found:
                found[design] = f"{where}:{line} ({table} {chain}): {rule}"
    for design in (IN_POD_REDIRECT, IN_POD, NODE_LEVEL, IN_POD_UNKNOWN):
        if design in found:
            return Finding(design, found[design])
    return Finding(NONE, "")


def capture_rules(capture: Capture) -> dict[str, str]:
    """Return {capture path: text} of every ``iptables-save.txt`` in ``capture`` (node, ztunnel, pods)."""
    return {p: capture.text(p) for p in capture.files.index if p.endswith("/iptables-save.txt")}
