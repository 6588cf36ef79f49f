"""Self-checks for the chapters' exercises. Each right answer is computed from the data, never
typed in; :func:`answer` says "Correct" or gives a hint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ambientlab.capture import load_capture
from ambientlab.parse import to_records
from ambientlab.policy import first_rule_for_mark


def _pod_outside_set() -> Any:
    cap = load_capture("kind-2022-kebe")
    pods = cap.parse("cluster/kubectl-get-pods-o-wide.txt")
    on_node = set(pods.loc[pods["NODE"] == "ambient-worker2", "IP"])
    (ip,) = on_node - set(cap.parse("node/ipset-list.txt").members["elem"])
    return ip


def _rule_for_0x300() -> Any:
    rules = to_records("ip-rule", load_capture("kind-2022-ambient-worker2").parse("node/ip-rule.txt"))
    return first_rule_for_mark(rules, 0x300)["priority"]


EXERCISES: dict[str, tuple[Callable[[], Any], str]] = {
    "01-pod-outside-set": (
        _pod_outside_set,
        "Compare the IPs of the pods whose NODE is ambient-worker2 in kubectl-get-pods-o-wide.txt "
        "with the members of the ipset; give the IP as a string.",
    ),
    "01-rule-for-0x300": (
        _rule_for_0x300,
        "Go down the rules by priority; a rule matches when (mark XOR fwmark) AND fwmask is 0. "
        "0x300 has both bits 0x200 and 0x100 set: which of rules 100 and 101 comes first? Give the priority.",
    ),
}


def answer(exercise: str, given: Any) -> str:
    """Return "Correct." if ``given`` is the answer computed from the data, else a hint."""
    compute, hint = EXERCISES[exercise]
    right = compute()
    if str(given).strip() == str(right):
        return "Correct."
    return f"Not yet. Hint: {hint}"
