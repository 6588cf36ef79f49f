"""Names for iptables rules that cannot be confused with ip rules.

An iptables rule is named by its table, a short form of its chain and its 1-based position in
that chain: ``mangle PRE-15`` is the 15th rule of ``mangle ztunnel-PREROUTING``. An ip rule is
named by its priority (``ip rule 101``), so the two never share a bare number in the text.
"""

from __future__ import annotations

import re

from ambientlab.core.parse.iptables import IptablesSave

SHORT = {"PREROUTING": "PRE", "PRERT": "PRE", "POSTROUTING": "POST", "POSTRT": "POST",
         "FORWARD": "FWD", "INPUT": "IN", "OUTPUT": "OUT"}
# The chains that Istio adds in front of a hook: ztunnel-PREROUTING (2022), ISTIO_PRERT (in-pod)
_ISTIO = re.compile(r"(?:ztunnel-|ISTIO_)([A-Z]+)")


def chain_short(chain: str) -> str:
    """Return the short form of an Istio chain (``ztunnel-PREROUTING`` → ``PRE``,
    ``ISTIO_OUTPUT`` → ``OUT``); any other chain (built-in or not) is returned unchanged."""
    m = _ISTIO.fullmatch(chain)
    if m is None:
        return chain
    return SHORT.get(m.group(1), m.group(1))


def rule_name(table: str, chain: str, position: int) -> str:
    """Return the book's name of an iptables rule: ``"mangle PRE-15"`` for the 15th rule of
    ``mangle ztunnel-PREROUTING``, ``"nat PREROUTING-2"`` for a built-in chain's 2nd rule."""
    return f"{table} {chain_short(chain)}-{position}"


def rule_names(parsed: IptablesSave) -> dict[int, str]:
    """Return the name of every rule of a parsed ``iptables-save``, keyed by its line in the file."""
    rules = parsed.rules
    return {int(line): rule_name(str(t), str(c), int(n))
            for line, t, c, n in zip(rules.index, rules["table"], rules["chain"], rules["rule"], strict=True)}
