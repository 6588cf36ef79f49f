"""``ip route show`` (any table, IPv4/IPv6, all route types, multipath) and ``ip route get``
answers, as records with iproute2's ``-j`` keys."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from pandas.arrays import IntegerArray

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.common import check_address, check_hex, check_name, split_prefix
from ambientlab.core.parse.lexer import TokenCursor, is_blank, lines_of
from ambientlab.core.tables import Column, frame_from_columns

ROUTE_TYPES = (
    "unicast", "local", "broadcast", "anycast", "multicast",
    "blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve",
)
FLAGS = (
    "dead", "onlink", "pervasive", "offload", "trap", "notify", "linkdown",
    "unresolved", "rt_offload", "rt_trap", "rt_offload_failed",
)
# Route metrics that iproute2 prints as "NAME [lock] INTEGER".
INT_METRICS = (
    "mtu", "window", "ssthresh", "cwnd", "advmss", "reordering", "hoplimit",
    "initcwnd", "initrwnd", "quickack", "fastopen_no_cookie",
)
# Metrics printed with a unit ("rtt 10ms", "rttvar 1.5s"), kept verbatim as printed.
TIME_METRICS = ("rtt", "rttvar", "rto_min")
TIME_VALUE = re.compile(r"(?:0|[1-9][0-9]{0,9})ms|[0-9]+(?:\.[0-9]+)?(?:e\+[0-9]+)?s")
# "features ecn" (names iproute2 knows; other bits print as 0x…), "congctl [lock] NAME".
FEATURES = ("ecn",)
METRICS = (*INT_METRICS, *TIME_METRICS, "features", "congctl")

SCHEMA: tuple[Column, ...] = (
    Column("type", "string", "route type when not unicast: local, broadcast, blackhole, unreachable, …"),
    Column("dst", "string", "destination: `default`, a prefix, or a host address"),
    Column("from", "string", "source selector (`ip route get … from`)"),
    Column("tos", "string", "TOS selector"),
    Column("gateway", "string", "next hop (`via`)"),
    Column("dev", "string", "output device"),
    Column("table", "string", "routing table (absent means main)"),
    Column("protocol", "string", "`proto`: who installed the route (absent means boot)"),
    Column("scope", "string", "`scope` when not global: link, host, …"),
    Column("prefsrc", "string", "preferred source address (`src`)"),
    Column("metric", "Int64", "route priority (`metric`)"),
    Column("flags", "object", "list of route flags: onlink, linkdown, dead, …"),
    Column("flow", "object", "realms as `{from, to}`"),
    Column("expires", "Int64", "seconds until the route expires"),
    Column("pref", "string", "IPv6 router preference"),
    Column("nhid", "Int64", "nexthop object id"),
    Column("metrics", "object", "route metrics as `[{mtu: …, advmss: …}]`; `rtt`/`rttvar`/`rto_min` verbatim "
                                "with their unit (`10ms`, `1.5s`; `-j` gives milliseconds), `features` a list, `congctl` a name"),
    Column("metrics_locked", "object", "metrics printed with `lock` (text only: `-j` drops the lock)"),
    Column("nexthops", "object", "multipath next hops: `[{gateway, dev, weight, flags}]`"),
    Column("mark", "Int64", "packet mark of an `ip route get` answer (decimal, as in `-j`)"),
    Column("uid", "Int64", "uid of an `ip route get` answer for local output"),
    Column("cache", "object", "flags of the `cache` line of an `ip route get` answer"),
    Column("iif", "string", "input device of an `ip route get` answer for a forwarded packet"),
    Column("error", "string", "the kernel's error for a failed `ip route get` (`RTNETLINK answers: …`)"),
    Column("via", "object", "`via inet6 ADDR` (a next hop of another family): `{family, host}`, as in `-j`"),
    Column("failed", "string", "`FILE:LINE` of the `Command failed` line `ip -force -batch` prints after an error"),
)


def _prefix_or_host(cur: TokenCursor, word: str) -> str:
    if word == "default":
        return word
    split_prefix(cur, word)
    return word


def _parse_fields(cur: TokenCursor, rec: dict[str, Any], *, nexthop: bool = False) -> None:
    """Consume ``KEY VALUE`` words and flags of a route (or of one ``nexthop``) into ``rec``."""
    seen: set[str] = set()
    while not cur.done():
        word = cur.next()
        if word in seen and word not in FLAGS:
            raise cur.error(word, "keyword repeated")
        seen.add(word)
        if word == "via":
            value = cur.next("a gateway")
            if value in ("inet", "inet6"):
                rec["via"] = {"family": value, "host": check_address(cur, cur.next("a gateway"), value)}
            else:
                rec["gateway"] = check_address(cur, value)
        elif word == "dev":
            rec["dev"] = check_name(cur, cur.next("a device"), "device name")
        elif word in FLAGS:
            if word in rec["flags"]:
                raise cur.error(word, "flag repeated")
            rec["flags"].append(word)
        elif word == "weight" and nexthop:
            rec["weight"] = cur.next_int("a weight")
            if not 1 <= rec["weight"] <= 256:
                raise cur.error(str(rec["weight"]), "a nexthop weight is 1 to 256")
        elif nexthop:
            raise cur.error(word, "unknown nexthop keyword")
        elif word == "from":
            rec["from"] = _prefix_or_host(cur, cur.next("a source"))
        elif word == "tos":
            rec["tos"] = check_hex(cur, cur.next("a TOS"), 8)
        elif word == "table":
            rec["table"] = check_name(cur, cur.next("a table"), "table")
            if rec["table"][0] in "0123456789":
                cur.uint(rec["table"], "a table id")
        elif word == "proto":
            rec["protocol"] = _name_or_u8(cur, cur.next("a protocol"))
        elif word == "scope":
            rec["scope"] = _name_or_u8(cur, cur.next("a scope"))
        elif word == "src":
            rec["prefsrc"] = check_address(cur, cur.next("a source address"))
        elif word == "metric":
            rec["metric"] = cur.next_int("a metric")
        elif word in ("realm", "realms"):
            value = cur.next("realms")
            src, slash, dst = value.partition("/")
            for realm in (src, dst) if slash else (src,):
                _name_or_u8(cur, realm, 16)
            rec["flow"] = {"from": src, "to": dst} if slash else {"to": src}
        elif word == "expires":
            value = cur.next("seconds")
            if not value.endswith("sec"):
                raise cur.error(value, "expected NNNsec")
            number = value[:-3]
            rec["expires"] = -cur.uint(number[1:], "seconds") if number.startswith("-") else cur.uint(number, "seconds")
        elif word == "pref":
            rec["pref"] = cur.next("a preference")
        elif word == "nhid":
            rec["nhid"] = cur.next_int("a nexthop id")
        elif word in METRICS:
            _metric(cur, word, rec)
        elif word == "mark":
            word = cur.next("a mark")  # iproute2: "mark %u" below 16, "mark 0x%x" from 16 on
            if word.startswith("0x"):
                rec["mark"] = cur.uint(word, "a mark", hexadecimal=True)
                if rec["mark"] < 16 or word != hex(rec["mark"]):
                    raise cur.error(word, "iproute2 prints a mark below 16 in decimal, others as 0x… (lower case)")
            else:
                rec["mark"] = cur.uint(word, "a mark")
                if rec["mark"] >= 16:
                    raise cur.error(word, "iproute2 prints a mark of 16 or more as 0x…")
        elif word == "uid":
            rec["uid"] = cur.next_int("a uid")
        else:
            raise cur.error(word, "unknown ip route keyword")


def _name_or_u8(cur: TokenCursor, word: str, bits: int = 8) -> str:
    """Return ``word``, a name from the iproute2 tables (``kernel``, ``link``…) or a number that
    fits the kernel field (``rtm_protocol``/``rtm_scope``: u8; a realm: u16), kept verbatim."""
    if word[:1] in tuple("0123456789"):
        cur.uint(word, "a number", bits)
    elif not word.isprintable() or not word.isascii():
        raise cur.error(word, "not a name iproute2 prints")
    return word


def _metric(cur: TokenCursor, name: str, rec: dict[str, Any]) -> None:
    """Consume ``[lock] VALUE`` of metric ``name`` into ``rec["metrics"]`` (and ``metrics_locked``)."""
    metrics = rec.setdefault("metrics", [{}])[0]
    if name in metrics:
        raise cur.error(name, "metric repeated")
    if cur.take("lock"):
        rec.setdefault("metrics_locked", []).append(name)
    if name in TIME_METRICS:
        value = cur.next(f"the {name} metric")
        if not TIME_VALUE.fullmatch(value):
            raise cur.error(value, f"expected the {name} metric as NNms or N.Ns")
        metrics[name] = value
    elif name == "congctl":
        metrics[name] = check_name(cur, cur.next("a congestion control algorithm"), "algorithm name")
    elif name == "features":
        names: list[str] = []
        while cur.peek() in FEATURES or (cur.peek() or "").startswith("0x"):
            word = cur.next()
            if word.startswith("0x"):
                check_hex(cur, word)
            if word in names:
                raise cur.error(word, "feature repeated")
            names.append(word)
        if not names:
            raise cur.error(cur.peek() or name, "features without a feature")
        metrics[name] = names
    else:
        metrics[name] = cur.next_int(f"the {name} metric")


def _parse_route_head(cur: TokenCursor) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    word = cur.next("a destination")
    if word in ROUTE_TYPES and word != "unicast":
        rec["type"] = word
        word = cur.next("a destination")
    rec["dst"] = _prefix_or_host(cur, word)
    rec["flags"] = []
    _parse_fields(cur, rec)
    return rec


def _parse_continuation(cur: TokenCursor, rec: dict[str, Any]) -> None:
    word = cur.next()
    if word == "nexthop":
        hop: dict[str, Any] = {"flags": []}
        _parse_fields(cur, hop, nexthop=True)
        rec.setdefault("nexthops", []).append(hop)
    elif word == "cache":
        if "cache" in rec:
            raise cur.error(word, "second cache line")
        rec["cache"] = []
        seen: set[str] = set()
        while not cur.done():
            item = cur.next()
            if item in seen:
                raise cur.error(item, "keyword repeated")
            seen.add(item)
            if item.startswith("<") and item.endswith(">") and len(item) > 2 and not rec["cache"]:
                flags = item[1:-1].split(",")
                if not all(flags):
                    raise cur.error(item, "empty cache flag")
                rec["cache"] = flags
            elif item == "iif":
                rec["iif"] = check_name(cur, cur.next("a device"), "device name")
            elif item in METRICS:
                _metric(cur, item, rec)
            elif item == "expires" and "expires" not in rec:
                value = cur.next("seconds")
                if not value.endswith("sec"):
                    raise cur.error(value, "expected NNNsec")
                number = value[:-3]
                rec["expires"] = -cur.uint(number[1:], "seconds") if number.startswith("-") else cur.uint(number, "seconds")
            else:
                raise cur.error(item, "unknown cache keyword")
    else:
        raise cur.error(word, "unexpected continuation line")


ERROR_PREFIX = "RTNETLINK answers: "
FAILED_PREFIX = "Command failed "

# The fast path. Most route lines are IPv4 routes with the fields below, printed in iproute2's
# own order (print_route: type, dst, via, dev, table, proto, scope, src, metric, flags). One
# regular expression reads such a line in C and checks each value as strictly as the token loop
# does (an octet 0-255 without a leading zero, as inet_pton; a prefix length 0-32; a u32 metric
# below 10**9 and a u8 protocol or scope without a leading zero; names of printable ASCII that
# the token loop accepts). A line it matches gives exactly the record the token loop gives
# (tests/test_properties.py checks it on generated and mutated lines); any other line, and
# every error, goes through the token loop.
_OCTET = r"(?:1[0-9][0-9]|2(?:[0-4][0-9]|5[0-5])|[1-9]?[0-9])"
_V4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_NAME = r"[A-Za-z_][A-Za-z0-9_.@:-]*+"
_U8 = r"(?:1[0-9][0-9]|2(?:[0-4][0-9]|5[0-5])|[1-9]?[0-9])"
# Each optional field is written (?: KEY (VALUE)|), not (?: KEY (VALUE))?: the same language,
# which Python's engine matches about a quarter faster.
_FAST = (
    rf"(?:({'|'.join(t for t in ROUTE_TYPES if t != 'unicast')}) |)"
    rf"(default|{_V4}(?:/(?:3[0-2]|[12]?[0-9])|))"
    rf"(?: via ({_V4})|)(?: dev ([A-Za-z0-9_][A-Za-z0-9_.@:-]*+)|)(?: table ({_NAME}|[1-9][0-9]{{0,8}})|)"
    rf"(?: proto ({_NAME}|{_U8})|)(?: scope ({_NAME}|{_U8})|)(?: src ({_V4})|)(?: metric (0|[1-9][0-9]{{0,8}})|)"
    rf"((?: (?:{'|'.join(sorted(FLAGS, key=len, reverse=True))}))+|) ?"
)
FAST_LINE = re.compile(_FAST)
FAST_TEXT = re.compile(rf"^{_FAST}\n", re.MULTILINE)
# The groups of _FAST, in order: None when a field is absent (flags: None or "").
FAST_COLUMNS = ("type", "dst", "gateway", "dev", "table", "protocol", "scope", "prefsrc", "metric", "flags")
_NO_ROW: tuple[str | None, ...] = (None,) * len(FAST_COLUMNS)


def _fast_record(groups: tuple[str | None, ...]) -> dict[str, Any]:
    """Return the record of a line matched by the fast path, keys in the token loop's order."""
    kind, dst, gateway, dev, table, protocol, scope, prefsrc, metric, flags = groups
    rec: dict[str, Any] = {"type": kind} if kind else {}
    rec["dst"] = dst
    rec["flags"] = flags.split() if flags else []
    for key, value in (("gateway", gateway), ("dev", dev), ("table", table), ("protocol", protocol),
                       ("scope", scope), ("prefsrc", prefsrc)):
        if value:
            rec[key] = value
    if metric:
        rec["metric"] = int(metric)
    return rec


def _flags_repeat(flags: str | None) -> bool:
    words = flags.split() if flags else []
    return len(set(words)) != len(words)


def _fast_fields(line: str) -> tuple[str | None, ...] | None:
    """Return the fields (:data:`FAST_COLUMNS`) of a line that the fast path reads, or None for
    a line the token loop must read (no match, or a flag repeated: the token loop's error)."""
    found = FAST_LINE.fullmatch(line)
    if found is None or _flags_repeat(found[10]):
        return None
    return found.groups()


def _fast_columns(text: str) -> dict[str, list[Any]] | None:
    """Return the fields of every line of ``text`` by column (:data:`FAST_COLUMNS`, None when
    absent), when the fast path reads every line; else None (the token loop reads the text).

    ``FAST_TEXT.split`` does it in C: the text comes back as the pieces between matches, each
    followed by the groups of its match, so with every piece empty each line matched, and the
    columns are slices of the one list (no match object, tuple or transposition per line)."""
    if not text.endswith("\n"):
        return None
    parts = FAST_TEXT.split(text)
    width = len(FAST_COLUMNS) + 1
    if any(parts[::width]):  # text between two matches: a line the fast path does not read
        return None
    columns = {name: parts[k::width] for k, name in enumerate(FAST_COLUMNS, start=1)}
    if any(_flags_repeat(f) for f in set(columns["flags"])):
        return None
    return columns


class _Routes:
    """The routes of a text: one row per route, gathered column-wise.

    ``columns`` holds the fast path's fields of each route (:data:`FAST_COLUMNS`: a list each,
    None when absent); a route that the token loop read has None there and its record in
    ``slow``, by row position. ``numbers`` are the first line numbers of the routes.
    """

    def __init__(self, columns: dict[str, list[Any]], slow: dict[int, dict[str, Any]],
                 numbers: list[int] | range) -> None:
        self.columns = columns
        self.slow = slow
        self.numbers = numbers

    def records(self) -> list[dict[str, Any]]:
        """Return one record per route, with iproute2's ``-j`` keys."""
        slow = self.slow
        rows = zip(*self.columns.values(), strict=True)
        return [slow[i] if i in slow else _fast_record(row) for i, row in enumerate(rows)]

    def frame(self) -> pd.DataFrame:
        """Return the routes as a DataFrame of :data:`SCHEMA`, index the first line numbers."""
        n, slow = len(self.numbers), self.slow
        columns: dict[str, Any] = {name: values.copy() if slow else values for name, values in self.columns.items()}
        columns["flags"] = [v.split() if v else [] for v in columns["flags"]]
        metric = np.array([int(v) if v else -1 for v in columns["metric"]], dtype=np.int64)
        if slow:
            for key in {k for rec in slow.values() for k in rec} - set(FAST_COLUMNS):
                columns[key] = [None] * n
            for pos, rec in slow.items():
                for key, values in columns.items():
                    values[pos] = rec.get(key)
                metric[pos] = rec.get("metric", -1)
        missing = metric < 0
        metric[missing] = 0
        columns["metric"] = IntegerArray(metric, missing)
        # Without routes of the token loop every value is a group of FAST_TEXT: a str or None.
        return frame_from_columns(columns, SCHEMA, n, self.numbers, known_str=not slow)


def _read_routes(text: str, source: str, allow_errors: bool, cut: bool, fast: bool = True) -> _Routes:
    """Return the routes of ``text`` (see :func:`parse_ip_route_records`). ``fast=False`` reads
    every line with the token loop (the tests compare both)."""
    columns = _fast_columns(text) if fast else None
    if columns is not None:
        return _Routes(columns, {}, range(1, len(columns["dst"]) + 1))
    rows: list[tuple[str | None, ...]] = []
    slow: dict[int, dict[str, Any]] = {}
    numbers: list[int] = []

    def last(cur: TokenCursor) -> dict[str, Any] | None:
        """Return the record of the last route (read by the token loop if the fast path read it)."""
        if not rows:
            return None
        pos = len(rows) - 1
        if pos not in slow:
            slow[pos] = _fast_record(rows[pos])
            rows[pos] = _NO_ROW
        return slow[pos]

    for line in lines_of(text, source, cut):
        fields = _fast_fields(line.text) if fast else None
        if fields is not None:
            rows.append(fields)
            numbers.append(line.number)
            continue
        if is_blank(line.text):
            continue
        cur = TokenCursor.of(line, source)
        if line.text[0] in " \t":
            rec = last(cur)
            if rec is None or "error" in rec:
                raise cur.error(line.text.strip(), "continuation line without a route")
            _parse_continuation(cur, rec)
            continue
        if line.text.startswith(FAILED_PREFIX) and allow_errors:
            rec = last(cur)
            if rec is None or "error" not in rec or "failed" in rec:
                raise cur.error(line.text, "'Command failed' without an error before it")
            rec["failed"] = line.text[len(FAILED_PREFIX):].strip(" \t")
            continue
        if line.text.startswith(ERROR_PREFIX):
            if not allow_errors:
                raise cur.error(line.text, "error line in route output")
            slow[len(rows)] = {"error": line.text[len(ERROR_PREFIX):].strip(" \t")}
        else:
            slow[len(rows)] = _parse_route_head(cur)
        rows.append(_NO_ROW)
        numbers.append(line.number)
    transposed = zip(*rows, strict=True) if rows else [()] * len(FAST_COLUMNS)
    return _Routes({name: list(values) for name, values in zip(FAST_COLUMNS, transposed, strict=True)}, slow, numbers)


def parse_ip_route_records(
    text: str, source: str = "<text>", *, allow_errors: bool = False, cut: bool = False
) -> tuple[list[dict[str, Any]], list[int]]:
    """Return (records, first line numbers) for ``ip route`` / ``ip route get`` text.

    Lines that start with white space continue the route above (``nexthop``, ``cache``).
    With ``allow_errors`` a line ``RTNETLINK answers: REASON`` becomes ``{"error": REASON}``
    (as in ``ip -force -batch`` output); otherwise it is a ParseError. ``cut``: see
    :func:`~ambientlab.core.parse.lexer.lines_of`.
    """
    routes = _read_routes(text, source, allow_errors, cut)
    return routes.records(), list(routes.numbers)


def parse_ip_route(text: str, source: str = "<text>", *, cut: bool = False) -> pd.DataFrame:
    """Return the routes of ``ip route show [table …]`` text as a DataFrame (:data:`SCHEMA`).

    An empty text is an empty table (no rows): ``ip route show table N`` prints nothing for a
    table without routes."""
    return _read_routes(text, source, False, cut).frame()


def parse_route_get(text: str, source: str = "<text>", *, cut: bool = False) -> pd.DataFrame:
    """Return ``ip route get`` answers (one or many, errors included) as a DataFrame.

    Each answer is one row; a failed lookup is a row with only ``error`` set. An empty text is
    a ParseError: every query prints an answer or an error.
    """
    if not text.strip(" \t\n"):
        raise ParseError(source, 1, text, "empty route get output (every query prints an answer or an error)")
    routes = _read_routes(text, source, True, cut)
    for rec, number in zip(routes.records(), routes.numbers, strict=True):
        if "error" not in rec and "/" in rec["dst"]:
            raise ParseError(source, number, rec["dst"], "a route get answer names a host, not a prefix")
    return routes.frame()


def _route_words(rec: dict[str, Any], nexthop: bool = False) -> list[str]:
    words: list[str] = []
    if not nexthop:
        if "type" in rec:
            words.append(rec["type"])
        words.append(rec["dst"])
        if "nhid" in rec:
            words += ["nhid", str(rec["nhid"])]
        if "from" in rec:
            words += ["from", rec["from"]]
        if "tos" in rec:
            words += ["tos", rec["tos"]]
    if "gateway" in rec:
        words += ["via", rec["gateway"]]
    if "via" in rec:
        words += ["via", rec["via"]["family"], rec["via"]["host"]]
    if "dev" in rec:
        words += ["dev", rec["dev"]]
    if nexthop:
        if "weight" in rec:
            words += ["weight", str(rec["weight"])]
        return words + list(rec["flags"])
    for key, word in (("table", "table"), ("protocol", "proto"), ("scope", "scope"), ("prefsrc", "src")):
        if key in rec:
            words += [word, rec[key]]
    if "metric" in rec:
        words += ["metric", str(rec["metric"])]
    words += list(rec["flags"])
    if "flow" in rec:
        flow = rec["flow"]
        words += ["realms" if "from" in flow else "realm", f"{flow['from']}/{flow['to']}" if "from" in flow else flow["to"]]
    if "mark" in rec:
        words += ["mark", hex(rec["mark"]) if rec["mark"] >= 16 else str(rec["mark"])]
    if "uid" in rec:
        words += ["uid", str(rec["uid"])]
    if "expires" in rec and "cache" not in rec:
        words += ["expires", f"{rec['expires']}sec"]
    if "cache" not in rec:
        words += _metric_words(rec)
    if "pref" in rec:
        words += ["pref", rec["pref"]]
    return words


def _metric_words(rec: dict[str, Any]) -> list[str]:
    words: list[str] = []
    locked = rec.get("metrics_locked") or []
    for name, value in (rec.get("metrics") or [{}])[0].items():
        words += [name] + (["lock"] if name in locked else []) + (list(value) if isinstance(value, list) else [str(value)])
    return words


def render_route(rec: dict[str, Any]) -> str:
    """Return the text iproute2 prints for ``rec`` (continuation lines included)."""
    if "error" in rec:
        text = ERROR_PREFIX + rec["error"]
        return text + (f"\n{FAILED_PREFIX}{rec['failed']}" if "failed" in rec else "")
    text = " ".join(_route_words(rec))
    for hop in rec.get("nexthops", []):
        text += "\n\tnexthop " + " ".join(_route_words(hop, nexthop=True))
    if "cache" in rec:
        extra = [f"<{','.join(rec['cache'])}>"] if rec["cache"] else []
        if "expires" in rec:
            extra += ["expires", f"{rec['expires']}sec"]
        extra += _metric_words(rec)
        if "iif" in rec:
            extra += ["iif", rec["iif"]]
        text += "\n    cache " + " ".join(extra)
    return text


__all__ = ["SCHEMA", "parse_ip_route", "parse_ip_route_records", "parse_route_get", "render_route"]
