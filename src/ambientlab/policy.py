"""Small, exact pieces of Linux policy-routing semantics used by chapters and checks."""

from __future__ import annotations

from typing import Any


def mark_matches(mark: int, fwmark: str | None, fwmask: str | None) -> bool:
    """Return True if packet ``mark`` matches an ``fwmark V[/M]`` selector (no selector matches all).

    As in the kernel: ``(mark ^ V) & M == 0``, with M = 0xffffffff when no mask is printed.
    """
    if fwmark is None:
        return True
    mask = int(fwmask, 16) if fwmask is not None else 0xFFFFFFFF
    return ((mark ^ int(fwmark, 16)) & mask) == 0


def first_rule_for_mark(rules: list[dict[str, Any]], mark: int) -> dict[str, Any]:
    """Return the first rule (by priority) whose fwmark selector matches ``mark``, among rules that
    select on nothing but the mark (``from all``). Raise ValueError if a rule has other selectors."""
    for rule in sorted(rules, key=lambda r: r["priority"]):
        other = set(rule) - {"priority", "src", "fwmark", "fwmask", "table", "goto", "action", "protocol"}
        if other or rule["src"] != "all":
            raise ValueError(f"rule {rule['priority']} selects on {sorted(other) or rule['src']}: needs the tracer")
        if mark_matches(mark, rule.get("fwmark"), rule.get("fwmask")):
            return rule
    raise ValueError("no rule matches")
