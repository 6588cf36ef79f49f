"""Reading iptables rules aloud: each part of a rule of ``iptables-save`` put into words.

:func:`named_rules` lists a host's rules with the book's names (``mangle PRE-15``), and
:func:`read_rule` splits one rule into its parts (the chain, each match, the target) with what
each part means. The parts come from the parser; the words from :data:`MATCH_WORDS` and
:data:`TARGET_WORDS`, a key for the options and targets that the book's captures use.
"""

from __future__ import annotations

import pandas as pd

from ambientlab.core.capture import Capture
from ambientlab.core.trace.names import rule_names

MATCH_WORDS = {
    "-s": "the source address is in {0}",
    "-d": "the destination address is in {0}",
    "-i": "the packet came in on device {0}",
    "-o": "the packet leaves by device {0}",
    "-p": "the protocol is {0}",
    "--sport": "the source port is {0}",
    "--dport": "the destination port is {0}",
    "--mark": "the packet's mark, under mask M, equals V ({0} = V/M)",
    "--match-set": "the {1} address is in the ipset {0}",
    "--comment": "(a comment, \"{0}\": matches every packet)",
    "--ctstate": "the connection's conntrack state is one of {0}",
    "--socket-exists": "the packet belongs to a local socket",
}
CONNMARK_WORDS = "the connection's mark (connmark), under mask M, equals V ({0} = V/M)"
TARGET_WORDS = {
    "MARK": "set the mark ({0}), then go on with the next rule",
    "CONNMARK": "copy or set mark bits of the connection ({0}), then go on with the next rule",
    "RETURN": "leave this chain: go back to the rule after the jump that led here",
    "ACCEPT": "stop: the packet leaves this table at this hook (the next table still runs)",
    "DROP": "stop: the packet is thrown away",
    "TPROXY": "hand the packet to a local socket ({0}) without changing its addresses; stop",
    "REDIRECT": "change the destination to this host ({0}); stop",
    "DNAT": "change the destination address ({0}); stop",
    "SNAT": "change the source address ({0}); stop",
    "LOG": "write the packet to the kernel log, then go on with the next rule",
}
JUMP_WORDS = "jump to the chain {target}: run its rules, then come back here unless one of them decides"
_WHERE = {"src": "source", "dst": "destination"}


def named_rules(capture: Capture, host: str = "node") -> pd.DataFrame:
    """Return every rule of ``HOST/iptables-save.txt`` with its book name in column ``name``
    (``mangle PRE-15``), indexed by its line in the file, next to the parser's columns."""
    parsed = capture.parse(f"{host}/iptables-save.txt")
    return parsed.rules.assign(name=pd.Series(rule_names(parsed)))


def read_rule(capture: Capture, name: str, host: str = "node") -> pd.DataFrame:
    """Return rule ``name`` (``"mangle PRE-10"``) of ``HOST/iptables-save.txt`` as its parts, left
    to right (``-A CHAIN``, each match with its ``!``, the target), each with what it means
    (column ``reads as``). A match or target missing from the key raises KeyError."""
    rules = named_rules(capture, host).set_index("name")
    if name not in rules.index:
        raise KeyError(f"no rule {name!r} in {capture.name}/{host}/iptables-save.txt")
    rule = rules.loc[name]
    parts = [("-A " + rule["chain"], "append this rule to the chain " + rule["chain"])]
    for match in rule["matches"]:
        if match["module"]:
            parts.append(("-m " + match["module"], "load the match module " + match["module"]))
        for opt in match["options"]:
            words = CONNMARK_WORDS if match["module"] == "connmark" else MATCH_WORDS[opt["option"]]
            text = " ".join(["!"] * opt["negated"] + [opt["option"], *opt["args"]])
            args = [_WHERE.get(a, a) for a in opt["args"]]
            parts.append((text, ("NOT: " if opt["negated"] else "") + words.format(*args)))
    target = rule["target"]
    options = " ".join(" ".join([o["option"], *o["args"]]) for o in rule["target_options"] or [])
    words = TARGET_WORDS.get(target, JUMP_WORDS)
    parts.append((f"{rule['jump']} {target} {options}".strip(), words.format(options, target=target)))
    return pd.DataFrame(parts, columns=[f"{name}: part", "reads as"])
