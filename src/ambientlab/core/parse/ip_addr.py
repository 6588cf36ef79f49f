"""``ip addr`` and ``ip [-d] link`` output (also grep excerpts of them), as one record per
interface with iproute2's ``-j`` keys and its addresses under ``addr_info``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.common import check_address, split_prefix
from ambientlab.core.parse.lexer import Line, TokenCursor, lines_of
from ambientlab.core.tables import Column, frame_from_records

SCHEMA: tuple[Column, ...] = (
    Column("ifindex", "Int64", "interface index"),
    Column("ifname", "string", "interface name"),
    Column("link", "string", "peer/parent device in the same namespace (`NAME@PEER`)"),
    Column("link_index", "Int64", "peer index in another namespace (`NAME@ifN`)"),
    Column("flags", "object", "interface flags, e.g. `[BROADCAST, MULTICAST, UP, LOWER_UP]`"),
    Column("mtu", "Int64", "MTU"),
    Column("qdisc", "string", "queueing discipline"),
    Column("master", "string", "bridge/bond master"),
    Column("operstate", "string", "operational state (`state`)"),
    Column("linkmode", "string", "`mode` (printed by `ip link`)"),
    Column("group", "string", "interface group"),
    Column("txqlen", "Int64", "`qlen`"),
    Column("link_type", "string", "`link/TYPE`: ether, loopback, none, …"),
    Column("address", "string", "link-layer address"),
    Column("broadcast", "string", "link-layer broadcast address"),
    Column("link_netnsid", "Int64", "`link-netnsid`: namespace id of the peer"),
    Column("link_netns", "string", "`link-netns`: name of the peer's namespace (text only; `-j` gives the id)"),
    Column("promiscuity", "Int64", "`-d`: promiscuity count"),
    Column("allmulti", "Int64", "`-d`: allmulti count"),
    Column("min_mtu", "Int64", "`-d`: minimum MTU"),
    Column("max_mtu", "Int64", "`-d`: maximum MTU"),
    Column("linkinfo", "object", "`-d`: `{info_kind, info_data}` (geneve, vxlan, veth, …)"),
    Column("inet6_addr_gen_mode", "string", "`-d`: `addrgenmode`"),
    Column("num_tx_queues", "Int64", "`-d`: `numtxqueues`"),
    Column("num_rx_queues", "Int64", "`-d`: `numrxqueues`"),
    Column("gso_max_size", "Int64", "`-d`"),
    Column("gso_max_segs", "Int64", "`-d`"),
    Column("tso_max_size", "Int64", "`-d`"),
    Column("tso_max_segs", "Int64", "`-d`"),
    Column("gro_max_size", "Int64", "`-d`"),
    Column("gso_ipv4_max_size", "Int64", "`-d`"),
    Column("gro_ipv4_max_size", "Int64", "`-d`"),
    Column("addr_info", "object", "addresses: `[{family, local, prefixlen, broadcast, scope, label, …}]`"),
)

DETAIL_INTS = {
    "promiscuity": "promiscuity", "allmulti": "allmulti", "minmtu": "min_mtu", "maxmtu": "max_mtu",
    "numtxqueues": "num_tx_queues", "numrxqueues": "num_rx_queues", "gso_max_size": "gso_max_size",
    "gso_max_segs": "gso_max_segs", "tso_max_size": "tso_max_size", "tso_max_segs": "tso_max_segs",
    "gro_max_size": "gro_max_size", "gso_ipv4_max_size": "gso_ipv4_max_size",
    "gro_ipv4_max_size": "gro_ipv4_max_size",
}
ADDR_FLAGS = (
    "secondary", "tentative", "deprecated", "dadfailed", "nodad", "noprefixroute", "home",
    "mngtmpaddr", "optimistic", "stable-privacy", "autojoin", "dynamic",
)
FOREVER = 4294967295

def _kind_geneve_vxlan(cur: TokenCursor, data: dict[str, Any]) -> None:
    word = cur.next()
    if word in ("id", "ageing", "vni"):
        data["id" if word == "vni" else word] = cur.next_int(word)
    elif word in ("remote", "local", "group"):
        data[word] = check_address(cur, cur.next(word))
    elif word == "dev":
        data["link"] = cur.next("a device")
    elif word == "srcport":
        data["port_range"] = {"low": cur.next_int("a port"), "high": cur.next_int("a port")}
    elif word == "dstport":
        data["port"] = cur.next_int("a port")
    elif word == "ttl":
        value = cur.next("a ttl")
        if value == "inherit":
            data["ttl_inherit"] = True
        else:
            data["ttl"] = 0 if value == "auto" else _int(cur, value)
    elif word in ("tos", "df", "flowlabel"):
        data[word] = cur.next(word)
    elif word in _CSUM:
        key, value = _CSUM[word]
        data[key] = value
    elif word in ("external", "innerprotoinherit", "gbp", "gpe", "l2miss", "l3miss", "proxy", "rsc"):
        data[word] = True
    elif word == "nolearning":
        data["learning"] = False
    else:
        raise cur.error(word, "unknown tunnel detail")


_CSUM = {
    "udpcsum": ("udp_csum", True), "noudpcsum": ("udp_csum", False),
    "udp6zerocsumtx": ("udp_zero_csum6_tx", True), "noudp6zerocsumtx": ("udp_zero_csum6_tx", False),
    "udp6zerocsumrx": ("udp_zero_csum6_rx", True), "noudp6zerocsumrx": ("udp_zero_csum6_rx", False),
}
KINDS = ("geneve", "vxlan", "veth", "bridge", "dummy")


def _int(cur: TokenCursor, word: str) -> int:
    if not word.isdigit():
        raise cur.error(word, "expected an integer")
    return int(word)


def _header(cur: TokenCursor) -> dict[str, Any]:
    idx = cur.next("an index")
    if not idx.endswith(":") or not idx[:-1].isdigit():
        raise cur.error(idx, "expected 'INDEX:'")
    rec: dict[str, Any] = {"ifindex": int(idx[:-1])}
    name = cur.next("an interface name")
    if not name.endswith(":") or len(name) < 2:
        raise cur.error(name, "expected 'NAME:'")
    name, at, peer = name[:-1].partition("@")
    rec["ifname"] = name
    if at:
        if peer.startswith("if") and peer[2:].isdigit():
            rec["link_index"] = int(peer[2:])
        elif peer == "NONE" or peer:
            rec["link"] = None if peer == "NONE" else peer
    flags = cur.next("<FLAGS>")
    if not (flags.startswith("<") and flags.endswith(">")):
        raise cur.error(flags, "expected <FLAGS>")
    rec["flags"] = [f for f in flags[1:-1].split(",") if f]
    keys = {"mtu": ("mtu", int), "qdisc": ("qdisc", str), "master": ("master", str),
            "state": ("operstate", str), "mode": ("linkmode", str), "group": ("group", str),
            "qlen": ("txqlen", int)}
    while not cur.done():
        word = cur.next()
        if word not in keys or keys[word][0] in rec:
            raise cur.error(word, "unknown or repeated link keyword")
        key, conv = keys[word]
        value = cur.next(word)
        rec[key] = _int(cur, value) if conv is int else value
    return rec


def _link_line(cur: TokenCursor, rec: dict[str, Any]) -> None:
    kind = cur.next()[len("link/"):]
    rec["link_type"] = kind
    if kind != "none":
        rec["address"] = cur.next("an address")
        if cur.take("brd"):
            rec["broadcast"] = cur.next("a broadcast address")
    _details(cur, rec)


def _details(cur: TokenCursor, rec: dict[str, Any]) -> None:
    while not cur.done():
        word = cur.next()
        if word == "link-netnsid":
            rec["link_netnsid"] = cur.next_int("a namespace id")
        elif word == "link-netns":
            rec["link_netns"] = cur.next("a namespace name")
        elif word in DETAIL_INTS:
            rec[DETAIL_INTS[word]] = cur.next_int(word)
        elif word == "addrgenmode":
            rec["inet6_addr_gen_mode"] = cur.next("a mode")
        elif word in KINDS and "linkinfo" not in rec:
            info: dict[str, Any] = {"info_kind": word}
            data: dict[str, Any] = {}
            while not cur.done() and cur.peek() not in ("addrgenmode", *DETAIL_INTS):
                if word in ("geneve", "vxlan"):
                    _kind_geneve_vxlan(cur, data)
                else:
                    raise cur.unexpected()
            if data:
                info["info_data"] = data
            rec["linkinfo"] = info
        else:
            raise cur.error(word, "unknown link detail")


def _address(cur: TokenCursor, family: str) -> dict[str, Any]:
    local, length = split_prefix(cur, cur.next("an address"))
    addr: dict[str, Any] = {"family": family, "local": local}
    if cur.take("peer"):
        addr["address"], plen = split_prefix(cur, cur.next("a peer"))
        length = plen if plen is not None else length
    if length is None:
        raise cur.error(local, "address without prefix length")
    addr["prefixlen"] = length
    while not cur.done():
        word = cur.next()
        if word == "brd":
            addr["broadcast"] = check_address(cur, cur.next("a broadcast address"))
        elif word == "scope":
            addr["scope"] = cur.next("a scope")
        elif word == "metric":
            addr["metric"] = cur.next_int("a metric")
        elif word in ADDR_FLAGS:
            addr["dynamic" if word == "dynamic" else word] = True
        elif cur.done() and family == "inet":
            addr["label"] = word
        else:
            raise cur.error(word, "unknown address keyword")
    return addr


def _lifetime(cur: TokenCursor, addr: dict[str, Any]) -> None:
    for word, key in (("valid_lft", "valid_life_time"), ("preferred_lft", "preferred_life_time")):
        if cur.next(word) != word:
            raise cur.error(cur.words[cur.pos - 1], f"expected {word}")
        value = cur.next("a lifetime")
        if value == "forever":
            addr[key] = FOREVER
        elif value.endswith("sec") and value[:-3].isdigit():
            addr[key] = int(value[:-3])
        else:
            raise cur.error(value, "bad lifetime")
    if not cur.done():
        raise cur.unexpected()


def parse_ip_addr_records(
    text: str, source: str = "<text>", *, excerpt: bool = False, link: bool = False
) -> tuple[list[dict[str, Any]], list[int]]:
    """Return (records, header line numbers) of ``ip addr`` (or, with ``link``, ``ip [-d] link``) text.

    Each interface must show its ``link/…`` line and each address its ``valid_lft`` line,
    unless ``excerpt`` is set (the output of ``ip addr | grep NAME``). As in ``-j`` output,
    ``ip addr`` records always have ``addr_info`` (maybe empty) and ``ip link`` records never.
    """
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    pending: tuple[Line, str] | None = None

    def close(line: Line) -> None:
        if pending and not excerpt:
            raise ParseError(source, pending[0].number, pending[1], "address without its valid_lft line")

    for line in lines_of(text):
        if not line.text.strip():
            continue
        cur = TokenCursor.of(line, source)
        first = cur.peek() or ""
        if not line.text[0].isspace():
            close(line)
            pending = None
            if records and "link_type" not in records[-1] and not excerpt:
                raise ParseError(source, numbers[-1], records[-1]["ifname"], "interface without a link/ line")
            records.append(_header(cur))
            if not link:
                records[-1]["addr_info"] = []
            numbers.append(line.number)
            continue
        if not records:
            raise cur.error(first, "indented line before any interface")
        rec = records[-1]
        if first.startswith("link/") and "link_type" not in rec:
            _link_line(cur, rec)
        elif first in ("inet", "inet6") and not link:
            close(line)
            cur.next()
            rec["addr_info"].append(_address(cur, first))
            pending = (line, first)
        elif first == "valid_lft":
            if not pending:
                raise cur.error(first, "valid_lft without an address")
            _lifetime(cur, rec["addr_info"][-1])
            pending = None
        elif first in KINDS or first in ("addrgenmode", *DETAIL_INTS):
            _details(cur, rec)
        else:
            raise cur.error(first, "unknown ip addr line")
    close(Line(0, ""))
    if records and "link_type" not in records[-1] and not excerpt:
        raise ParseError(source, numbers[-1], records[-1]["ifname"], "interface without a link/ line")
    return records, numbers


def parse_ip_addr(text: str, source: str = "<text>", *, excerpt: bool = False) -> pd.DataFrame:
    """Return the interfaces of ``ip addr`` text as a DataFrame (:data:`SCHEMA`)."""
    records, numbers = parse_ip_addr_records(text, source, excerpt=excerpt)
    return frame_from_records(records, SCHEMA, numbers)


def parse_ip_link(text: str, source: str = "<text>", *, excerpt: bool = False) -> pd.DataFrame:
    """Return the interfaces of ``ip [-d] link`` text as a DataFrame (:data:`SCHEMA`, no addresses)."""
    records, numbers = parse_ip_addr_records(text, source, excerpt=excerpt, link=True)
    return frame_from_records(records, SCHEMA, numbers)


def addresses(frame: pd.DataFrame) -> pd.DataFrame:
    """Return one row per address of a :func:`parse_ip_addr` frame: ifname, family, local,
    prefixlen, scope (index: the interface's line)."""
    rows, index = [], []
    for line, name, infos in zip(frame.index, frame["ifname"], frame["addr_info"], strict=True):
        for info in infos or []:
            rows.append({"ifname": name, "family": info["family"], "local": info["local"],
                         "prefixlen": info["prefixlen"], "scope": info.get("scope", pd.NA)})
            index.append(line)
    out = pd.DataFrame(rows, index=pd.Index(index, name="line"), columns=["ifname", "family", "local", "prefixlen", "scope"])
    return out.astype({"ifname": "string", "family": "string", "local": "string", "prefixlen": "Int64", "scope": "string"})
