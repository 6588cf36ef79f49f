"""A walk told as a story: the numbered steps of one packet, computed from its hop table, and a
sequence diagram of a whole connection.

:func:`steps` reads the tracer's hop table (:func:`ambientlab.book.walk`) row by row and keeps
one line per *decision*: a rule that changed something or stopped a chain, a routing decision
(the deciding ip rule and the route it chose), a tunnel, a namespace boundary, the socket or pod
that received the packet. Rules that decide nothing (LOG rules, bare jumps into a chain) are not
steps. iptables rules are named as the book names them (``mangle PRE-15``), ip rules by their
priority (``ip rule 101``). Each step says what matched, what changed, and why it matters; the
"why" is computed from the same table (for a mark: the ip rule that later selects it).

:func:`ambientlab.book.player.story` shows the steps, with a step-through above them and the full
hop table folded under them; :func:`draw_connection` draws every packet of a walk between the pods, the nodes and the ztunnels it crosses;
:func:`who_connects` lists, for each SYN of some walks, who connects to whom from which address.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import pandas as pd

from ambientlab.book.marks import MEANINGS, PACKET
from ambientlab.core.capture import load_capture
from ambientlab.core.trace.names import rule_names
from ambientlab.core.trace.walks import packet_hops

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Targets that act on a packet (anything else after -j is a user chain: a jump)
ACTING = {"ACCEPT", "DROP", "RETURN", "REJECT", "MARK", "CONNMARK", "TPROXY", "REDIRECT", "DNAT", "SNAT",
          "MASQUERADE"}
_IPRULE = re.compile(r"^(\d+):\s+(.*)$")


@dataclass(frozen=True)
class Step:
    """One decision on a packet's way: where (host), what matched, what changed, why it matters,
    and the hops of the hop table it stands for."""

    host: str
    matched: str
    changed: str
    why: str
    hops: tuple[int, ...]

    def text(self) -> str:
        """Return the step as one line of plain text."""
        parts = [f"{self.host}: {self.matched}"]
        if self.changed:
            parts.append(f"→ {self.changed}")
        if self.why:
            parts.append(f"({self.why})")
        return " ".join(parts)

    def html(self) -> str:
        """Return the step as one line of HTML: where, what matched, what changed, why."""
        line = f"<b>{html.escape(self.host)}</b>: {_md(self.matched)}"
        if self.changed:
            line += f" → {_md(self.changed)}"
        if self.why:
            line += f"<br><i>why:</i> {_md(self.why)}"
        return line


@lru_cache(maxsize=64)
def _names_in(source: str) -> dict[int, str]:
    """Return the rule names of the iptables-save file ``source`` (``CAPTURE/PATH``), or {} if
    it is not a file of a capture the book can open."""
    capture_name, _, path = source.partition("/")
    try:
        capture = load_capture(capture_name)
    except (FileNotFoundError, KeyError, ValueError):
        return {}
    if path not in capture.files.index:
        return {}
    return rule_names(capture.parse(path))


def rule_label(line: object, where: str) -> str:
    """Return the book's name of the iptables rule cited by hop-table ``line``
    (``CAPTURE/PATH:LINE``), e.g. ``mangle PRE-15``; the table and chain ``where`` if the file
    cannot be read."""
    if isinstance(line, str) and ":" in line:
        source, _, number = line.rpartition(":")
        name = _names_in(source).get(int(number))
        if name:
            return name
    return where


def _target(matched: str) -> tuple[str, str]:
    """Return (target, the rule's text before ``-j``) of an iptables rule's text."""
    head, _, tail = matched.partition("-j ")
    return (tail.split()[0] if tail else ""), head.strip()


def _silent(matched: str) -> bool:
    """Return True for a rule that decides nothing: a LOG rule, or a jump into a chain whose
    only condition is a comment."""
    target, head = _target(matched)
    if target == "LOG":
        return True
    if target in ACTING:
        return False
    return not re.sub(r'-m comment --comment ("[^"]*"|\S+)', "", head).strip()


def _mark_value(text: str) -> int:
    return int(text, 16) if isinstance(text, str) and text.startswith("0x") else 0


def _next_route(rows: pd.DataFrame, start: int, host: str) -> tuple[list[str], str] | None:
    """Return (the ip rules that decided, route text) of the next routing decision on ``host``
    after position ``start``, or None if the packet leaves the host first."""
    rules: list[str] = []
    for i in range(start + 1, len(rows)):
        row = rows.iloc[i]
        if row["host"] != host or (row["hook"] == "wire" and not str(row["where"]).startswith("tunnel")):
            return None
        if row["hook"] == "routing" and row["where"] == "ip rule":
            rules.append(str(row["matched"]))
        elif row["hook"] == "routing" and str(row["where"]).startswith("table ") and rules:
            return rules, f"{host} {row['where']}: {row['matched']}"
    return None


def _ip_rule_name(text: str) -> str:
    m = _IPRULE.match(text)
    return f"ip rule {m.group(1)}" if m else text


def _rule_chain(rules: list[str]) -> str:
    """Return ip rules as the book names them, with their selectors: ``ip rule 101 (from all
    fwmark 0x100/0x100 lookup 101)``, a goto followed by the rule it jumped to."""
    parts = []
    for rule in rules:
        m = _IPRULE.match(rule)
        parts.append(f"{_ip_rule_name(rule)} ({m.group(2) if m else rule})")
    return " → ".join(parts)


def _local_first(rules: list[str]) -> bool:
    """Return True if the deciding ip rule is priority 0 (lookup local): a local destination."""
    m = _IPRULE.match(rules[0]) if rules else None
    return bool(m and m.group(1) == "0")


def _why_mark(rows: pd.DataFrame, i: int, host: str, mark: str) -> str:
    found = _next_route(rows, i, host)
    set_to = re.search(r"--set-xmark (\S+)", str(rows.iloc[i]["matched"]))
    meaning = MEANINGS.get((PACKET, set_to.group(1))) if set_to else None
    unrouted = found is None or not (_local_first(found[0]) or "fwmark" in found[0][0])
    if meaning and unrouted:  # a mark that no ip rule selects here: say what it is for (the mark sheet's meaning)
        return f"{set_to.group(1)} is {meaning[0]}; no ip rule selects it here"  # type: ignore[union-attr]
    if found is None:
        return f"{host} takes no routing decision after this: the mark matters only to its rules"
    rules, route = found
    if _local_first(rules):
        return (f"ip rule 0 (lookup local) comes first: the destination is an address of this namespace ({host}), so mark {mark} "
                f"does not choose the route → {route}")
    if "fwmark" in rules[0]:
        return f"mark {mark} selects {_rule_chain(rules)} → {route}"
    return f"no ip rule before {_ip_rule_name(rules[0])} selects mark {mark}: {_rule_chain(rules)} → {route}"


def _rule_step(rows: pd.DataFrame, i: int) -> Step | None:
    row = rows.iloc[i]
    matched, host = str(row["matched"]), str(row["host"])
    if _silent(matched):
        return None
    name = rule_label(row["line"], str(row["where"]))
    target, head = _target(matched)
    before, after = str(row["mark_before"]), str(row["mark_after"])
    changed: list[str] = []
    if before != after:
        changed.append(f"mark {after} (was {before})")
    elif target == "MARK":
        changed.append(f"mark stays {after} (already set)")
    ct_before = str(rows.iloc[i - 1]["ctmark"]) if i and rows.iloc[i - 1]["host"] == host else None
    if target == "CONNMARK" and "--save-mark" in matched:
        changed.append(f"connmark {row['ctmark']} (was {ct_before or '0x0'}): the mark is saved on the connection")
    elif target == "CONNMARK" and "--restore-mark" in matched:
        changed.append(f"mark restored from the connection's mark {row['ctmark']}")
    elif target == "CONNMARK":
        changed.append(f"connmark {row['ctmark']} (was {ct_before or '0x0'})")
    headers_before = str(rows.iloc[i - 1]["headers"]) if i else ""
    why = ""
    conditions = []
    if "--match-set" in head:
        m = re.search(r"(!\s+)?--match-set (\S+) (src|dst)", head)
        if m:
            conditions.append(f"{'not ' if m.group(1) else ''}{m.group(3)} in ipset {m.group(2)}")
    if "-m connmark --mark" in head:
        conditions.append("the connection carries connmark " + head.split("-m connmark --mark ")[1].split()[0])
    if target == "MARK":
        why = _why_mark(rows, i, host, after)
    elif target == "CONNMARK" and "--save-mark" in matched:
        why = "the connection keeps the mark: its later packets, answers included, can be told by it"
    elif target == "CONNMARK" and "--restore-mark" in matched:
        why = _why_mark(rows, i, host, after)
    elif target == "TPROXY":
        port = re.search(r"--on-port (\d+)", matched)
        changed.append(f"handed to the local socket on port {port.group(1) if port else '?'}, destination kept")
        why = _why_mark(rows, i, host, after)
    elif target == "REDIRECT":
        port = re.search(r"--to-ports (\d+)", matched)
        changed.append(f"destination → this host, port {port.group(1) if port else '?'}")
        why = "the connection stays inside this namespace"
    elif target in ("DNAT", "SNAT", "MASQUERADE"):
        later = _translated(rows, i)
        changed.append(f"the connection is translated: when this hook's rules are done the packet is `{later}`" if later
                       else "the connection is translated, but this packet's addresses and ports stay as they were")
    elif target == "RETURN":
        changed.append(f"leaves {str(row['where']).split(' ', 1)[-1]}: its later rules are skipped")
    elif target == "ACCEPT":
        table = str(row["where"]).split(" ", 1)[0]
        changed.append(f"accepted: the rest of the {table} table's rules for this hook are skipped")
        if table == "nat" and row["hook"] in ("PREROUTING", "OUTPUT"):
            why = "no NAT for this connection: kube-proxy's service chains never see it, the destination stays"
    elif target in ("DROP", "REJECT"):
        changed.append("dropped")
    if conditions and not why:
        why = "; ".join(conditions)
    elif conditions:
        why = "; ".join(conditions) + "; " + why
    if not changed and row["headers"] != headers_before and i:
        changed.append(f"now {row['headers']}")
    return Step(host, f"{name} `{matched}`", "; ".join(changed), why, (int(rows.index[i]),))


def _translated(rows: pd.DataFrame, i: int) -> str:
    """Return the headers the packet of NAT rule row ``i`` has once the translation is applied
    (the first later row of the same host whose headers differ, before the packet leaves it), or
    "" if they stay the same."""
    host, headers = rows.iloc[i]["host"], rows.iloc[i]["headers"]
    for j in range(i + 1, len(rows)):
        row = rows.iloc[j]
        if row["host"] != host or (row["hook"] == "wire" and str(row["where"]).startswith("tunnel")):
            return ""
        if row["headers"] != headers:
            return str(row["headers"])
        if row["hook"] == "wire":
            return ""
    return ""


def _route_step(rows: pd.DataFrame, i: int) -> tuple[Step | None, int]:
    """Return the step of the routing decision starting at position ``i`` (ip rules, then the
    route or the error), and the position after it."""
    host = str(rows.iloc[i]["host"])
    rules, j = [], i
    while j < len(rows) and rows.iloc[j]["hook"] == "routing" and rows.iloc[j]["where"] == "ip rule":
        rules.append(str(rows.iloc[j]["matched"]))
        j += 1
    route_row = rows.iloc[j] if j < len(rows) and rows.iloc[j]["hook"] == "routing" else None
    used = [int(rows.index[k]) for k in range(i, j + (route_row is not None))]
    end = j + (route_row is not None)
    names = _rule_chain(rules)
    mark = str(rows.iloc[i]["mark_after"])
    if route_row is None:
        return Step(host, f"routing: {names}", "", "", tuple(used)), end
    if route_row["where"] == "error":
        return Step(host, f"routing: {names}" if names else "routing", f"fails: {route_row['matched']}",
                    "no route: the packet is lost here", tuple(used)), end
    route = f"{host} {route_row['where']}: {route_row['matched']}"
    local_route = str(route_row["where"]) == "table local" or str(route_row["matched"]).startswith("local ")
    body = " ".join(_IPRULE.match(r).group(2) if _IPRULE.match(r) else r for r in rules)  # type: ignore[union-attr]
    if "fwmark" in body:
        why = f"mark {mark} matches the fwmark"
    elif _local_first(rules):
        why = f"ip rule 0 (lookup local) comes first: the destination is an address of this namespace ({host})"
    else:
        why = (f"no ip rule before {_ip_rule_name(rules[0])} selects mark {mark}" if _mark_value(mark) and rules
               else "the packet has no mark")
    dev = route_row["oif"]
    changed = f"out by {dev}" if isinstance(dev, str) and dev else ""
    if "type local" in route or local_route:
        changed = "delivered locally (to this host's sockets, by lo: a local route's dev does not matter)"
    matched = f"routing: {names} → {route}" if names else f"routing: {route}"
    return Step(host, matched, changed, why, tuple(used)), end


def _wire_step(rows: pd.DataFrame, i: int, warned: set[tuple[str, str]] | None = None) -> Step | None:
    """Return the step of wire row ``i``; a crossing from one modelled host into another warns
    that their table numbers are their own, once per pair of hosts in ``warned``."""
    row = rows.iloc[i]
    host, where, matched = str(row["host"]), str(row["where"]), str(row["matched"])
    hop = (int(rows.index[i]),)
    if where.startswith("into "):
        return Step(host, f"sends `{row['headers']}`", f"into {where.removeprefix('into ')}", "", hop)
    if where.startswith("veth "):
        a, b = where.removeprefix("veth ").split(" -> ")
        if a == "eth0" and b.endswith("/eth0"):  # two nodes: the underlay, reduced to one wire
            return Step(host, f"leaves by {a}", f"arrives in {b} with mark {row['mark_after']} (was {row['mark_before']})",
                        "the underlay between the nodes (kind's docker network, one wire here): marks stay behind", hop)
        why = "a veth joins two network namespaces: the mark and the conntrack entry stay behind"
        other = b.split("/", 1)[0]
        if warned is not None and (host, other) not in warned:
            warned.add((host, other))
            why += _crossing_warning(host, other)
        return Step(host, f"leaves by veth {a}", f"arrives in {b} with mark {row['mark_after']} (was {row['mark_before']})",
                    why, hop)
    if where.startswith("tunnel ") and matched.startswith("encapsulated"):
        return Step(host, f"enters tunnel {where.removeprefix('tunnel ')}", matched.replace("encapsulated: ", "wrapped in "),
                    "the outer packet is routed on its own, and keeps the inner packet's mark for that lookup", hop)
    if where.startswith("tunnel "):
        return Step(host, f"tunnel {where.removeprefix('tunnel ')}", matched, "", hop)
    if where == "lo" or matched.startswith("looped back"):
        return Step(host, "leaves by lo", "received again on lo, with its route and conntrack entry", "", hop)
    return Step(host, f"leaves by {where}", matched, "", hop)


def _crossing_warning(host: str, other: str) -> str:
    """Return the warning for a packet crossing from ``host`` into ``other``, two namespaces with
    rules and routing tables of their own."""
    return (f"; from here on, the rules and routing tables are {other}'s own: a table or rule number now "
            f"names {other}'s, not {host}'s")


def _deliver_step(rows: pd.DataFrame, i: int) -> Step:
    row = rows.iloc[i]
    host, where, matched = str(row["host"]), str(row["where"]), str(row["matched"])
    hop = (int(rows.index[i]),)
    if where.startswith("tunnel "):
        dev = where.removeprefix("tunnel ")
        return Step(host, f"UDP {row['headers'].split(' ')[2]} is the tunnel's port", f"unwrapped: the inner packet "
                    f"arrives on {dev}", "the tunnel's far end is a device of this namespace", hop)
    if matched.startswith("socket "):
        return Step(host, f"delivered to {matched}", f"`{row['headers']}`", "", hop)
    return Step(host, matched, "", "", hop)


def steps(frame: pd.DataFrame, packet: int | str | None = None) -> list[Step]:
    """Return the numbered story of one packet of walk ``frame`` (by number or label; the
    frame's only packet if None): one :class:`Step` per decision, in order."""
    rows = packet_hops(frame, packet) if packet is not None else frame
    out: list[Step] = []
    first = rows.iloc[0] if len(rows) else None
    if first is not None and first["hook"] != "wire":  # sent by a socket of this host: say what it sends
        mark = str(first["mark_before"])
        changed = f"socket mark {mark}" if _mark_value(mark) else "no socket mark"
        sent = str(first["headers"])
        if sent.startswith("0.0.0.0:"):  # an unbound socket: the routing decision picks the source address
            chosen = next((str(h) for h in rows["headers"] if not str(h).startswith("0.0.0.0:")), "")
            source = chosen.split(" > ")[0].rsplit(":", 1)[0] if chosen else ""
            changed += f"; its source address is left to the route, which picks {source}" if source else \
                "; its source address is left to the route"
        out.append(Step(str(first["host"]), f"a socket sends `{sent}`", changed, "", ()))  # no hop of its own
    warned: set[tuple[str, str]] = set()
    outer = False  # between a tunnel's wrapping and its unwrapping: the steps are the outer packet's
    i = 0
    while i < len(rows):
        row = rows.iloc[i]
        hook = row["hook"]
        if hook == "routing":
            step, i = _route_step(rows, i)
            if step is not None:
                outer = _add(out, step, outer)
            continue
        if hook == "wire":
            step = _wire_step(rows, i, warned)
        elif hook == "deliver":
            step = _deliver_step(rows, i)
        elif row["where"] == "verdict":
            step = Step(str(row["host"]), f"{hook} ends", f"verdict {row['matched']}", "the packet is dropped",
                        (int(rows.index[i]),))
        else:
            step = _rule_step(rows, i)
        if step is not None:
            outer = _add(out, step, outer)
        i += 1
    return out


def _add(out: list[Step], step: Step, outer: bool) -> bool:
    """Append ``step`` to ``out``, named as the outer packet's if it comes between a tunnel's
    wrapping and its unwrapping (``outer``); return whether the next step is still the outer
    packet's."""
    if outer and not step.matched.startswith("enters tunnel"):
        step = replace(step, matched=f"outer packet: {step.matched}")
    out.append(step)
    return (outer or step.matched.startswith("enters tunnel")) and not step.changed.startswith("unwrapped")


def _md(text: str) -> str:
    """Return ``text`` as HTML, with `code` spans."""
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if k % 2 else html.escape(p) for k, p in enumerate(parts))


# -- who connects to whom -----------------------------------------------------------------------
def _ends(rows: pd.DataFrame) -> str:
    last = rows.iloc[-1]
    matched = str(last["matched"])
    if matched.startswith("arrives in pod "):
        return "pod " + matched.removeprefix("arrives in pod ")
    return f"{last['host']}: {matched}"


STAND_IN = ("the lab's simplification: its stand-in ztunnel passes the connection straight through with the "
            "client's address (not 2022 behaviour)")


def who_connects(walks: dict[str, pd.DataFrame], stand_ins: Collection[str] = ()) -> pd.DataFrame:
    """Return one row per SYN of ``walks`` (name → hop table, in order): who sends it, from which
    address to which, where it ends, and — for a SYN that a ztunnel sends to an app port — the
    downstream peer of the connection it passes on (the source of the last SYN delivered to that
    ztunnel's socket before it, in these walks) and whether the source equals that peer.

    The "basis" column says what each source address rests on: an app's own address, or the
    ztunnel socket's source, *derived* from the 2022 code (the walk's script sets it; the tracer
    computes the path), or, for the walks named in ``stand_ins``, the lab's stand-in ztunnel,
    which passes connections straight through (:data:`STAND_IN`)."""
    rows = []
    delivered: dict[str, str] = {}  # ztunnel host -> source of the last SYN delivered to its socket
    for name, frame in walks.items():
        for label in frame["packet"].drop_duplicates():
            hops = frame[frame["packet"] == label]
            first = str(hops["headers"].iloc[0])
            if "[S]" not in first:
                continue
            src, dst = first.split(" > ")[0], first.split(" > ")[1].split(" ")[0]
            sender = str(hops["host"].iloc[0])
            end = _ends(hops)
            dport = int(dst.rsplit(":", 1)[1])
            hbone = dport in (15008, 15088)
            onward = sender.endswith("ztunnel") and not hbone
            peer = delivered.get(sender, "") if onward else ""
            rows.append({
                "walk": name, "packet": label, "sender": sender, "source": src.rsplit(":", 1)[0], "to": dst,
                "ends at": end,
                "downstream peer": peer,
                "source = peer": (peer == src.rsplit(":", 1)[0]) if peer else "",
                "basis": (STAND_IN if onward and name in stand_ins
                          else "derived (2022 code): original_src, the downstream peer" if onward
                          else "derived (2022 code): HBONE from the ztunnel's own address"
                          if hbone else "the app's own address"),
            })
            last = hops.iloc[-1]
            if str(last["matched"]).startswith("socket ") and str(last["host"]).endswith("ztunnel"):
                delivered[str(last["host"])] = str(last["headers"]).split(" > ")[0].rsplit(":", 1)[0]
    return pd.DataFrame(rows).set_index(["walk", "packet"])


# -- the connection as a sequence diagram ---------------------------------------------------------
@dataclass(frozen=True)
class Leg:
    """One stretch of a packet's way: from one lane to the next, by a device, in a tunnel or not."""

    start: str
    end: str
    via: str
    tunnel: bool
    hop: object = None  # the index label of the hop-table row that ends this stretch


def legs(rows: pd.DataFrame) -> tuple[list[Leg], str]:
    """Return the stretches of one packet's hop table between lanes (pods, hosts, the rest of the
    cluster), and how it ends (``socket``, ``pod``, ``world`` or ``lost``)."""
    out: list[Leg] = []
    first = rows.iloc[0]
    current = str(first["host"])
    tunnel = None  # the tunnel device the packet is inside, if any
    for hop, row in rows.iterrows():
        where, matched, host = str(row["where"]), str(row["matched"]), str(row["host"])
        if row["hook"] != "wire" and row["hook"] != "deliver":
            continue
        if where.startswith("into "):
            machine, dev = where.removeprefix("into ").split("/", 1)
            out.append(Leg(host, machine, f"{machine}/{dev}", False, hop))
            current = machine
        elif where.startswith("tunnel ") and matched.startswith("encapsulated"):
            tunnel = where.removeprefix("tunnel ")
        elif where.startswith("veth "):
            a, b = where.removeprefix("veth ").split(" -> ")
            machine = b.split("/", 1)[0]
            via = f"{tunnel} (geneve, over {host}/{a})" if tunnel else f"{host}/{a} → {b}"  # both ends, named by namespace
            out.append(Leg(host, machine, via, tunnel is not None, hop))
            current = machine
        elif row["hook"] == "deliver" and where.startswith("tunnel "):
            tunnel = None
        elif matched.startswith("arrives in pod "):
            out.append(Leg(current, matched.removeprefix("arrives in pod "), f"{host}/{where}", False, hop))
            return out, "pod"
        elif matched.startswith("leaves for"):
            out.append(Leg(current, matched.removeprefix("leaves for "), f"{host}/{where}", False, hop))
            return out, "world"
        elif matched.startswith("dropped"):
            return out, "lost"
    last = rows.iloc[-1]
    return out, "socket" if str(last["matched"]).startswith("socket ") else "lost"


def lanes(frame: pd.DataFrame) -> list[str]:
    """Return the lanes of walk ``frame``'s diagram: every pod, host and outside place its
    packets cross, in the order they first appear."""
    seen: list[str] = []
    for label in frame["packet"].drop_duplicates():
        found, _ = legs(frame[frame["packet"] == label])
        for leg in found:
            for lane in (leg.start, leg.end):
                if lane not in seen:
                    seen.append(lane)
        if not found:
            host = str(frame[frame["packet"] == label]["host"].iloc[0])
            if host not in seen:
                seen.append(host)
    return seen


@dataclass(frozen=True)
class Row:
    """One packet's row of the sequence diagram: its label, its stretches with where each arrow
    runs ((x0, y), (x1, y) in the diagram's coordinates), how it ends, and the point it starts at."""

    label: str
    arrows: list[tuple[Leg, tuple[float, float], tuple[float, float]]]
    ending: str
    start: tuple[float, float]

    def end(self) -> tuple[float, float]:
        """Return the point where the packet ends: the tip of its last arrow, or its start."""
        return self.arrows[-1][2] if self.arrows else self.start


def connection_rows(frame: pd.DataFrame, order: list[str] | None = None) -> tuple[list[str], list[Row]]:
    """Return the lanes of walk ``frame``'s sequence diagram (:func:`lanes`, or ``order``: the
    lanes of the whole walk, when ``frame`` is one of its packets) and one :class:`Row` per packet,
    top to bottom, as :func:`draw_connection` draws them."""
    names = order if order is not None else lanes(frame)
    packets = list(frame["packet"].drop_duplicates())
    x = {name: k for k, name in enumerate(names)}
    out = []
    for row, label in enumerate(packets):
        y = len(packets) - row
        hops = frame[frame["packet"] == label]
        found, ending = legs(hops)
        step = 0.5 / max(len(found), 1)  # each stretch a little lower: a packet that turns back stays readable
        arrows = [(leg, (float(x[leg.start]), y - k * step), (float(x[leg.end]), y - k * step)) for k, leg in enumerate(found)]
        start = (float(x[found[0].start] if found else x[str(hops["host"].iloc[0])]), float(y))
        out.append(Row(str(label), arrows, ending, start))
    return names, out


def draw_connection(frame: pd.DataFrame, title: str = "", ax: Axes | None = None, order: list[str] | None = None) -> Axes:
    """Draw every packet of walk ``frame`` as a row of arrows between lanes (pods, nodes,
    ztunnels, the rest of the cluster): each arrow is one stretch, labelled with the device it
    crosses, dashed inside a tunnel; a packet ends at a dot (a socket), a lane (a pod or the
    cluster) or a cross (lost). ``order``: the lanes, left to right (by default :func:`lanes`).
    Return the axes."""
    import matplotlib.pyplot as plt

    from ambientlab.book.figures import bilingual  # (figures sets the CJK font: book.fonts)

    names, rows = connection_rows(frame, order)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(8.0, 2.0 * len(names)), 1.0 + 1.0 * len(rows)))
    for k, name in enumerate(names):
        ax.plot([k, k], [0.4, len(rows) + 0.3], color="#bbb", lw=1, zorder=0)
        ax.text(k, len(rows) + 0.45, bilingual(name), ha="center", va="bottom", fontsize=9, weight="bold", wrap=True)
    for row in rows:
        ax.text(-0.45, row.start[1] + 0.2, row.label, ha="left", va="bottom", fontsize=8, color="#333")
        previous = None
        for leg, (a, at), (b, _) in row.arrows:
            if previous is not None:
                ax.plot([a, a], [previous, at], color="#2c3e50", lw=0.8, ls=":")
            ax.annotate("", xy=(b, at), xytext=(a, at), arrowprops={
                "arrowstyle": "-|>", "color": "#c0392b" if leg.tunnel else "#2c3e50", "lw": 1.4,
                "linestyle": "--" if leg.tunnel else "-", "shrinkA": 2, "shrinkB": 2})
            ax.text((a + b) / 2, at + 0.03, leg.via, ha="center", va="bottom", fontsize=7, color="#555")
            previous = at
        if row.ending == "socket":
            ax.plot(*row.end(), "o", color="#27ae60", ms=7)
        elif row.ending == "lost":
            ax.plot(*row.end(), "x", color="#c0392b", ms=9, mew=2)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylim(0.3, len(rows) + 0.9)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11, pad=14)
    return ax
