"""``ip addr`` and ``ip [-d] link`` output (also grep excerpts of them), as one record per
interface with iproute2's ``-j`` keys and its addresses under ``addr_info``."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from ambientlab.core.errors import ParseError
from ambientlab.core.parse.common import check_address, check_name, split_prefix
from ambientlab.core.parse.lexer import Line, TokenCursor, is_blank, lines_of
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
    Column("address", "string", "link-layer address (absent for links without one, e.g. `link/can`)"),
    Column("broadcast", "string", "link-layer broadcast address"),
    Column("link_netnsid", "Int64", "`link-netnsid`: namespace id of the peer"),
    Column("link_netns", "string", "`link-netns`: name of the peer's namespace (text only; `-j` gives the id)"),
    Column("promiscuity", "Int64", "`-d`: promiscuity count"),
    Column("allmulti", "Int64", "`-d`: allmulti count"),
    Column("min_mtu", "Int64", "`-d`: minimum MTU"),
    Column("max_mtu", "Int64", "`-d`: maximum MTU"),
    Column("linkinfo", "object", "`-d`: `{info_kind, info_data, info_slave_kind, info_slave_data}` (geneve, vxlan, "
                                 "veth; bridge, vrf, macvlan and bridge/vrf ports with their values as printed)"),
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
    Column("altnames", "object", "`altname NAME` lines: the interface's alternative names, in order"),
    Column("permaddr", "string", "`permaddr`: the permanent link-layer address"),
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
    "mngtmpaddr", "optimistic", "stable-privacy", "autojoin", "dynamic", "temporary",
)
FOREVER = 4294967295

def _kind_geneve_vxlan(cur: TokenCursor, data: dict[str, Any]) -> None:
    word = cur.next()
    key = {"vni": "id", "dev": "link", "srcport": "port_range", "dstport": "port"}.get(word, word)
    key = _CSUM[word][0] if word in _CSUM else "learning" if word == "nolearning" else key
    if key in data or (word == "ttl" and "ttl_inherit" in data):
        raise cur.error(word, "tunnel detail repeated")
    if word in ("id", "ageing", "vni"):
        data["id" if word == "vni" else word] = cur.next_int(word)
    elif word in ("remote", "local", "group"):
        data[word] = check_address(cur, cur.next(word))
    elif word == "dev":
        data["link"] = cur.next("a device")
    elif word == "srcport":
        data["port_range"] = {"low": cur.next_int("a port", 16), "high": cur.next_int("a port", 16)}
    elif word == "dstport":
        data["port"] = cur.next_int("a port", 16)
    elif word == "ttl":
        value = cur.next("a ttl")
        if value == "inherit":
            data["ttl_inherit"] = True
        else:
            data["ttl"] = 0 if value == "auto" else cur.uint(value, "a ttl", 8)
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
KINDS = ("geneve", "vxlan", "veth", "bridge", "dummy", "vrf", "macvlan", "tun", "openvswitch")
# Kinds whose details are "KEY VALUE" pairs, kept as printed (strings; -j gives typed values).
PAIR_KINDS = ("bridge", "vrf", "macvlan", "tun")
# "bridge_slave state … priority …": the port's details under the master's kind.
SLAVE_KINDS = {"bridge_slave": "bridge", "vrf_slave": "vrf", "openvswitch_slave": "openvswitch"}
DETAIL_WORDS = frozenset(("link-netnsid", "link-netns", "addrgenmode", *DETAIL_INTS, *KINDS, *SLAVE_KINDS))


def _int(cur: TokenCursor, word: str) -> int:
    return cur.uint(word, "an integer")


# A link-layer address as iproute2 prints it: hex bytes with colons, or an IP address (tunnels).
LINK_ADDRESS = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2})*")


def _header(cur: TokenCursor) -> dict[str, Any]:
    idx = cur.next("an index")
    if not idx.endswith(":") or not idx[:-1].isascii() or not idx[:-1].isdigit():
        raise cur.error(idx, "expected 'INDEX:'")
    rec: dict[str, Any] = {"ifindex": cur.uint(idx[:-1], "an interface index", 31)}
    name = cur.next("an interface name")
    if not name.endswith(":") or len(name) < 2:
        raise cur.error(name, "expected 'NAME:'")
    name, at, peer = name[:-1].partition("@")
    rec["ifname"] = check_name(cur, name, "interface name")
    if at:
        if not peer:
            raise cur.error(f"{name}@", "'@' without a peer")
        if peer.startswith("if") and peer[2:3] in tuple("123456789"):
            rec["link_index"] = cur.uint(peer[2:], "a peer index", 31)
        else:
            rec["link"] = None if peer == "NONE" else check_name(cur, peer, "peer name")
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


def _link_address(cur: TokenCursor, word: str) -> str:
    if not (LINK_ADDRESS.fullmatch(word) or check_address(cur, word)):
        raise cur.error(word, "not a link-layer address")
    return word


def _link_line(cur: TokenCursor, rec: dict[str, Any]) -> None:
    kind = cur.next()[len("link/"):]
    if not kind:
        raise cur.error("link/", "link/ without a type")
    rec["link_type"] = kind
    # iproute2 prints the address only when the link has one (not for link/none, link/can, …)
    nxt = cur.peek()
    if nxt is not None and nxt not in DETAIL_WORDS:
        rec["address"] = _link_address(cur, cur.next("an address"))
        for word, key in (("brd", "broadcast"), ("peer", "broadcast")):
            if cur.take(word):
                rec[key] = _link_address(cur, cur.next("a broadcast address"))
                if word == "peer":
                    raise cur.error("peer", "link peer addresses are not supported")
                break
        if cur.take("permaddr"):
            rec["permaddr"] = _link_address(cur, cur.next("an address"))
    _details(cur, rec)


def _pairs(cur: TokenCursor, data: dict[str, Any]) -> None:
    """Consume ``KEY VALUE`` words up to the next generic detail into ``data`` (values verbatim)."""
    while not cur.done() and cur.peek() not in ("addrgenmode", *DETAIL_INTS, *KINDS, *SLAVE_KINDS):
        key = cur.next()
        if key in data:
            raise cur.error(key, "detail repeated")
        data[key] = cur.next(f"the value of {key}")


def _details(cur: TokenCursor, rec: dict[str, Any]) -> None:
    while not cur.done():
        word = cur.next()
        if word in SLAVE_KINDS:
            info = rec.setdefault("linkinfo", {})
            if "info_slave_kind" in info:
                raise cur.error(word, "a second slave kind")
            info["info_slave_kind"] = SLAVE_KINDS[word]
            slave: dict[str, Any] = {}
            _pairs(cur, slave)
            if slave:
                info["info_slave_data"] = slave
            continue
        key = {"link-netnsid": "link_netnsid", "link-netns": "link_netns", "addrgenmode": "inet6_addr_gen_mode"}.get(
            word, DETAIL_INTS.get(word, "linkinfo" if word in KINDS else word))
        if key in rec:
            raise cur.error(word, "link detail repeated")
        if word == "link-netnsid":
            rec["link_netnsid"] = cur.next_int("a namespace id")
        elif word == "link-netns":
            rec["link_netns"] = cur.next("a namespace name")
        elif word in DETAIL_INTS:
            rec[DETAIL_INTS[word]] = cur.next_int(word)
            if rec[DETAIL_INTS[word]] >= 1 << 31 and word not in ("promiscuity", "allmulti"):
                raise cur.error(str(rec[DETAIL_INTS[word]]), f"{word} out of range")
        elif word == "addrgenmode":
            rec["inet6_addr_gen_mode"] = cur.next("a mode")
        elif word in KINDS:
            info: dict[str, Any] = {"info_kind": word}
            data: dict[str, Any] = {}
            if word in PAIR_KINDS:
                _pairs(cur, data)
            while not cur.done() and cur.peek() not in ("addrgenmode", *DETAIL_INTS, *SLAVE_KINDS):
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
    local, length = split_prefix(cur, cur.next("an address"), family)
    addr: dict[str, Any] = {"family": family, "local": local}
    if cur.take("peer"):
        addr["address"], plen = split_prefix(cur, cur.next("a peer"), family)
        length = plen if plen is not None else length
    if length is None:
        raise cur.error(local, "address without prefix length")
    addr["prefixlen"] = length
    while not cur.done():
        word = cur.next()
        key = {"brd": "broadcast", "proto": "protocol"}.get(word, word)
        if key in addr:
            raise cur.error(word, "address keyword repeated")
        if word == "brd":
            addr["broadcast"] = check_address(cur, cur.next("a broadcast address"), family)
        elif word == "scope":
            addr["scope"] = cur.next("a scope")
        elif word == "metric":
            addr["metric"] = cur.next_int("a metric")
        elif word == "proto":
            addr["protocol"] = cur.next("a protocol")  # kernel_ll, kernel_ra, … (iproute2 ≥ 6.3)
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
        elif value.endswith("sec"):
            addr[key] = cur.uint(value[:-3], "a lifetime")
        else:
            raise cur.error(value, "bad lifetime")
    if not cur.done():
        raise cur.unexpected()


def parse_ip_addr_records(
    text: str, source: str = "<text>", *, excerpt: bool = False, link: bool = False, cut: bool = False
) -> tuple[list[dict[str, Any]], list[int]]:
    """Return (records, header line numbers) of ``ip addr`` (or, with ``link``, ``ip [-d] link``) text.

    Each interface must show its ``link/…`` line and each address its ``valid_lft`` line,
    unless ``excerpt`` is set (the output of ``ip addr | grep NAME``). ``ip -4 addr`` and
    ``ip -6 addr`` print no ``link/`` lines, and only interfaces with addresses: a file where
    no interface has one is read as that (each must then have an address), a file where only
    some have one is an error. As in ``-j`` output, ``ip addr`` records
    always have ``addr_info`` (maybe empty) and ``ip link`` records never. An empty text is a
    ParseError (every namespace has ``lo``) unless ``excerpt`` is set (grep found nothing).
    ``cut``: see :func:`~ambientlab.core.parse.lexer.lines_of`.
    """
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    pending: tuple[Line, str] | None = None
    if not text.strip(" \t\n") and not excerpt:
        raise ParseError(source, 1, text, f"empty ip {'link' if link else 'addr'} output (every namespace has lo)")

    def close() -> None:
        if pending and not excerpt:
            raise ParseError(source, pending[0].number, pending[1], "address without its valid_lft line")

    def check_link_lines() -> None:
        if excerpt or not records:
            return
        with_link = ["link_type" in r for r in records]
        if not (link or any(with_link)):  # ip -4/-6 addr: only interfaces with such addresses
            with_link = [bool(r["addr_info"]) for r in records]
        if not all(with_link):
            i = with_link.index(False)
            raise ParseError(source, numbers[i], records[i]["ifname"], "interface without a link/ line")

    for line in lines_of(text, source, cut):
        if is_blank(line.text):
            continue
        cur = TokenCursor.of(line, source)
        first = cur.peek() or ""
        if line.text[0] not in " \t":
            close()
            pending = None
            records.append(_header(cur))
            if not link:
                records[-1]["addr_info"] = []
            numbers.append(line.number)
            continue
        if not records:
            raise cur.error(first, "indented line before any interface")
        rec = records[-1]
        if pending and first != "valid_lft" and not excerpt:
            close()
        if first.startswith("link/"):
            if "link_type" in rec or rec.get("addr_info") or "altnames" in rec:
                raise cur.error(first, "link/ line repeated or out of place")
            _link_line(cur, rec)
        elif first == "altname":
            cur.next()
            name = check_name(cur, cur.next("an alternative name"), "interface name")
            if name in rec.get("altnames", []) or not cur.done() or rec.get("addr_info"):
                raise cur.error(name if cur.done() else cur.peek() or name, "altname repeated, out of place, or with more words")
            rec.setdefault("altnames", []).append(name)
        elif first in ("inet", "inet6") and not link:
            cur.next()
            rec["addr_info"].append(_address(cur, first))
            pending = (line, first)
        elif first == "valid_lft":
            if not pending:
                raise cur.error(first, "valid_lft without an address")
            _lifetime(cur, rec["addr_info"][-1])
            pending = None
        elif first in KINDS or first in SLAVE_KINDS or first in ("addrgenmode", *DETAIL_INTS):
            _details(cur, rec)
        else:
            raise cur.error(first, "unknown ip addr line")
    close()
    check_link_lines()
    return records, numbers


def parse_ip_addr(text: str, source: str = "<text>", *, excerpt: bool = False, cut: bool = False) -> pd.DataFrame:
    """Return the interfaces of ``ip addr`` text as a DataFrame (:data:`SCHEMA`); see
    :func:`parse_ip_addr_records` for the options and what an empty text means."""
    records, numbers = parse_ip_addr_records(text, source, excerpt=excerpt, cut=cut)
    return frame_from_records(records, SCHEMA, numbers)


def parse_ip_link(text: str, source: str = "<text>", *, excerpt: bool = False, cut: bool = False) -> pd.DataFrame:
    """Return the interfaces of ``ip [-d] link`` text as a DataFrame (:data:`SCHEMA`, no addresses);
    see :func:`parse_ip_addr_records`."""
    records, numbers = parse_ip_addr_records(text, source, excerpt=excerpt, link=True, cut=cut)
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
