"""A host's IPv4 routing state (devices, addresses, sysctls, rules, tables) and ``ip route get``.

:meth:`Host.route_get` answers as ``ip route get`` does: with ``iif`` it follows
``ip_route_input_slow`` (martian checks, forwarding, reverse-path validation); without it,
``ip_route_output_key_hash_rcu`` (source checks, local delivery, source address selection).
The answer is a record with the keys of ``ip -j route get``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ambientlab.core.trace import ipv4
from ambientlab.core.trace.fib import Errno, Fib, FibResult, Flow
from ambientlab.core.trace.ipv4 import SCOPES


@dataclass(frozen=True, slots=True)
class Address:
    """One IPv4 address of a device."""

    local: int
    length: int
    scope: int
    secondary: bool = False

    def covers(self, addr: int) -> bool:
        """Return True if ``addr`` is in this address's subnet (``inet_ifa_match``)."""
        mask = ipv4.MASKS[self.length]
        return not ((addr ^ self.local) & mask)


@dataclass(slots=True)
class Device:
    """A network device: name, index, state and IPv4 addresses in kernel order."""

    name: str
    index: int
    up: bool = True
    loopback: bool = False
    addrs: list[Address] = field(default_factory=list)


Answer = tuple[dict[str, Any], FibResult | None]  # a record and the lookup behind it
SYSCTL_DEFAULTS = {"forwarding": 0, "rp_filter": 0, "accept_local": 0, "src_valid_mark": 0,
                   "route_localnet": 0, "send_redirects": 1}


@dataclass
class Sysctls:
    """``net.ipv4.conf.{all,DEV}.*`` values that routing reads (missing devices use ``default``)."""

    conf: dict[str, dict[str, int]] = field(default_factory=dict)
    _devices: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def device(self, dev: str) -> dict[str, int]:
        """Return every value in force for ``dev``, combined with ``all`` as the kernel does:
        ``rp_filter`` is the larger of the two, ``forwarding`` is the device's own (kept equal to
        ``ip_forward``), the others are on when either is. Kept per device."""
        found = self._devices.get(dev)
        if found is None:
            mine = self.conf.get(dev, self.conf.get("default", {}))
            every = self.conf.get("all", {})
            found = {}
            for key, default in SYSCTL_DEFAULTS.items():
                own, all_ = mine.get(key, default), every.get(key, default)
                found[key] = max(own, all_) if key == "rp_filter" else own if key == "forwarding" else int(bool(own or all_))
            self._devices[dev] = found
        return found

    def get(self, dev: str, key: str) -> int:
        """Return the value of ``key`` in force for ``dev`` (see :meth:`device`)."""
        return self.device(dev)[key]

    @classmethod
    def from_pairs(cls, pairs: dict[str, str]) -> Sysctls:
        """Return Sysctls from ``{"net.ipv4.conf.eth0.rp_filter": "0", "net.ipv4.ip_forward": "1"}``."""
        conf: dict[str, dict[str, int]] = {}
        forward = pairs.get("net.ipv4.ip_forward")
        for key, value in pairs.items():
            parts = key.split(".")
            if parts[:3] == ["net", "ipv4", "conf"] and len(parts) == 5 and parts[4] in SYSCTL_DEFAULTS:
                conf.setdefault(parts[3], {})[parts[4]] = int(value)
        if forward is not None:
            for dev in conf.values():
                dev.setdefault("forwarding", int(forward))
            conf.setdefault("all", {}).setdefault("forwarding", int(forward))
            conf.setdefault("default", {}).setdefault("forwarding", int(forward))
        return cls(conf)


class Host:
    """One network namespace's routing: :meth:`route_get` answers like ``ip route get``."""

    def __init__(self, name: str, devices: list[Device], fib: Fib, sysctls: Sysctls | None = None) -> None:
        self.name = name
        self.devices = {d.name: d for d in devices}
        self._fib = fib
        self.sysctls = sysctls or Sysctls()
        self.local_addrs = {a.local for d in devices for a in d.addrs}
        self.loopback = next((d.name for d in devices if d.loopback), "lo")
        self._validated: dict[tuple[int, str | None, str, int], Errno | bool] = {}

    @property
    def fib(self) -> Fib:
        """Return the rules and tables."""
        return self._fib

    @fib.setter
    def fib(self, fib: Fib) -> None:
        self._fib = fib
        self._validated.clear()  # answers kept for the old rules no longer hold

    # -- source address selection -------------------------------------------------------
    def _select_addr(self, dev: str, dst: int, scope: int) -> int:
        """Return ``inet_select_addr(dev, dst, scope)`` (0 if there is none)."""
        addr = 0
        device = self.devices.get(dev)
        localnet = SCOPES["link"] if device and self.sysctls.get(dev, "route_localnet") else 255
        for a in device.addrs if device else ():
            if a.secondary or min(a.scope, localnet) > scope:
                continue
            if not dst or a.covers(dst):
                return a.local
            if not addr:
                addr = a.local
        if addr:
            return addr
        for other in self.devices.values():
            for a in other.addrs:
                if not a.secondary and a.scope != SCOPES["link"] and a.scope <= scope:
                    return a.local
        return 0

    def _prefsrc(self, found: FibResult) -> int:
        route, hop = found.route, found.nexthop
        if route.prefsrc is not None:
            return route.prefsrc
        return self._select_addr(hop.dev, hop.gateway or 0, route.scope)

    def is_local(self, addr: int) -> bool:
        """Return True if ``addr`` is an address of this host (``-m addrtype --dst-type LOCAL``:
        an address of a device, or a ``local`` route of the local table)."""
        return self._is_local(addr)

    def masquerade_source(self, dev: str, nexthop: int) -> int:
        """Return the source MASQUERADE writes for a packet leaving by ``dev`` toward ``nexthop``
        (the gateway, or the destination when directly connected): ``inet_select_addr(dev,
        nexthop, RT_SCOPE_UNIVERSE)``; 0 if the device has no address."""
        return self._select_addr(dev, nexthop, SCOPES["universe"])

    def _is_local(self, addr: int) -> bool:
        """Return True if ``addr`` is an address of this host (``__ip_dev_find``: an address of
        a device, else a ``local`` route of the local table, e.g. all of 127.0.0.0/8; while the
        tables are merged, the local table's lookup walks main's routes too)."""
        if addr in self.local_addrs:
            return True
        table = self._fib.merged or self._fib.tables.get(ipv4.TABLES["local"])
        found = table.lookup(Flow(dst=addr)) if table else Errno.EAGAIN
        return not isinstance(found, Errno) and found[0].type == "local"

    # -- reverse path check -----------------------------------------------------------------
    def validate_source(self, src: int, dst: int, oif: str | None, iif: str, flow: Flow) -> Errno | bool:
        """Return ``fib_validate_source`` for a packet from ``src`` arriving on ``iif``: an error
        (martian source, or the reverse-path filter; ``ip route get`` reports both as EINVAL),
        else True when the source is directly connected (the reverse route has no gateway),
        else False.

        When every rule selects on the mark alone and the flow has no TOS, the answer depends on
        (src, oif, iif, the selected mark bits) only, and is kept.
        """
        fib = self._fib
        if not (fib.mark_only and not flow.tos):
            return self._validate_source(src, dst, oif, iif, flow)
        key = (src, oif, iif, flow.mark & fib.mark_bits if self.sysctls.device(iif)["src_valid_mark"] else 0)
        found = self._validated.get(key)
        if found is None:
            found = self._validated[key] = self._validate_source(src, dst, oif, iif, flow)
        return found

    def _validate_source(self, src: int, dst: int, oif: str | None, iif: str, flow: Flow) -> Errno | bool:
        conf = self.sysctls.device(iif)
        rpf = conf["rp_filter"]
        if not rpf and (iif != oif or not conf["send_redirects"]):
            if conf["accept_local"]:
                return False
            if not (self._fib.custom_local_routes or self._fib.custom_rules):
                return Errno.EINVAL if src in self.local_addrs else False
        back = Flow(dst=src, src=dst, iif=oif or self.loopback,
                    mark=flow.mark if conf["src_valid_mark"] else 0,
                    tos=flow.tos, proto=flow.proto, sport=flow.dport, dport=flow.sport)
        found = self._fib.lookup(back)
        device = self.devices[iif]
        if isinstance(found, Errno):
            return Errno.EINVAL if rpf else False
        kind = found.route.type
        if kind != "unicast" and (kind != "local" or not conf["accept_local"]):
            return Errno.EINVAL
        if any(h.dev == iif for h in found.route.nexthops) or (kind == "local" and device.loopback):
            return found.nexthop.gateway is None
        if not device.addrs:
            return Errno.EINVAL if rpf else False
        if rpf == 1:
            return Errno.EINVAL
        back.oif = iif
        again = self._fib.lookup(back)
        return not isinstance(again, Errno) and again.route.type == "unicast" and again.nexthop.gateway is None

    # -- ip route get ---------------------------------------------------------------------------
    def route_get(self, dst: str, src: str | None = None, iif: str | None = None, mark: int = 0, *,
                  proto: int = 0, sport: int = 0, dport: int = 0, anysrc: bool = False,
                  detail: bool = True) -> dict[str, Any]:
        """Return the answer of ``ip route get DST [from SRC] [iif DEV] [mark MARK]`` as a record
        with ``ip -j route get`` keys; a failed lookup is ``{"error": TEXT}``.

        With ``detail``, extra keys not printed by iproute2 tell walks what decided: ``_rule``
        (the Rule), ``_via`` (the goto Rule that jumped to it, or None), ``_route`` (the Route),
        ``_candidates`` (next hops of a multipath route), ``_errno``. ``anysrc`` is a
        transparent socket's lookup (``FLOWI_FLAG_ANYSRC``): a source that is not local is allowed.
        """
        if iif is not None and iif not in self.devices:
            return {"error": f'Cannot find device "{iif}"', **({"_errno": Errno.ENODEV} if detail else {})}
        flow = Flow(dst=ipv4.to_int(dst), src=ipv4.to_int(src) if src else 0, mark=mark,
                    proto=proto, sport=sport, dport=dport)
        if iif is None:
            answer = self._output(flow, anysrc)
        else:
            flow.iif = iif
            answer = self._input(flow)
        if isinstance(answer, Errno):
            return {"error": answer.message, "_errno": answer} if detail else {"error": answer.message}
        rec, found = answer
        if detail:
            rec["_rule"] = found.rule if found else None
            rec["_via"] = found.via if found else None
            rec["_route"] = found.route if found else None
            if found is not None and len(found.route.nexthops) > 1:
                rec["_candidates"] = [(ipv4.to_text(h.gateway) if h.gateway else None, h.dev)
                                      for h in found.route.nexthops]
        return rec

    def _record(self, flow: Flow, kind: str, dev: str, found: FibResult | None, *, prefsrc: int = 0,
                iif: str | None = None, cache: list[str]) -> tuple[dict[str, Any], FibResult | None]:
        rec: dict[str, Any] = {}
        if kind != "unicast":
            rec["type"] = kind
        rec["dst"] = ipv4.to_text(flow.dst)
        if flow.src:
            rec["from"] = ipv4.to_text(flow.src)
        if found is not None and found.nexthop.gateway is not None and kind == "unicast":
            rec["gateway"] = ipv4.to_text(found.nexthop.gateway)
        rec["dev"] = dev
        if found is not None and found.table != ipv4.TABLES["main"]:
            rec["table"] = ipv4.table_name(found.table)
        if iif is None and prefsrc and prefsrc != flow.src:
            rec["prefsrc"] = ipv4.to_text(prefsrc)
        rec["flags"] = []
        if flow.mark:
            rec["mark"] = flow.mark
        if iif is None:
            rec["uid"] = 0
        rec["cache"] = cache
        # rt_set_nexthop copies the route's metrics (not for local input, nor for broadcasts,
        # which are made without the route's fib_info).
        if found is not None and kind not in ("broadcast", "multicast") and (iif is None or kind == "unicast"):
            for key in ("metrics", "metrics_locked"):
                if key in found.route.record:
                    rec[key] = found.route.record[key]
        if iif is not None:
            rec["iif"] = iif
        return rec, found

    def _input(self, flow: Flow) -> Answer | Errno:
        src, dst, iif = flow.src, flow.dst, flow.iif
        # The address class tests of ipv4 (is_multicast, is_lbcast, is_zeronet, is_loopback),
        # written out: this runs for every forwarded query.
        if (src & 0xF0000000) == 0xE0000000 or src == 0xFFFFFFFF:
            return Errno.EINVAL
        if dst == 0xFFFFFFFF or (src == 0 and dst == 0):
            return self._broadcast_input(flow, None)
        if not src & 0xFF000000 or not dst & 0xFF000000:
            return Errno.EINVAL
        conf = self.sysctls.device(iif)
        if ((dst & 0xFF000000) == 0x7F000000 or (src & 0xFF000000) == 0x7F000000) and not conf["route_localnet"]:
            return Errno.EINVAL
        if (dst & 0xF0000000) == 0xE0000000:
            raise NotImplementedError("multicast input is not modelled")
        found = self._fib.lookup(flow)
        forwarding = conf["forwarding"]
        if isinstance(found, Errno):
            return found if forwarding else Errno.EHOSTUNREACH
        kind = found.route.type
        if kind == "broadcast":
            return self._broadcast_input(flow, found)
        if kind == "local":
            if isinstance(self.validate_source(src, dst, None, iif, flow), Errno):
                return Errno.EINVAL
            return self._record(flow, "local", self.loopback, found, iif=iif, cache=["local"])
        if not forwarding:
            return Errno.EHOSTUNREACH
        if kind != "unicast":
            return Errno.EINVAL
        out = found.nexthop.dev
        checked = self.validate_source(src, dst, out, iif, flow)
        if isinstance(checked, Errno):
            return checked
        # __mkroute_input: a packet leaving by the device it came in on, from a directly
        # connected source, gets an ICMP redirect (shared_media is on by default).
        redirect = out == iif and checked and conf["send_redirects"]
        return self._record(flow, "unicast", out, found, iif=iif, cache=["redirect"] if redirect else [])

    def _broadcast_input(self, flow: Flow, found: FibResult | None) -> Answer | Errno:
        if (flow.src and not ipv4.is_zeronet(flow.src)
                and isinstance(self.validate_source(flow.src, 0, None, flow.iif, flow), Errno)):
            return Errno.EINVAL
        return self._record(flow, "broadcast", self.loopback, found, iif=flow.iif, cache=["local", "brd"])

    def _output(self, flow: Flow, anysrc: bool = False) -> Answer | Errno:
        src, dst = flow.src, flow.dst
        if src and not anysrc:
            if ipv4.is_multicast(src) or ipv4.is_lbcast(src) or ipv4.is_zeronet(src):
                return Errno.EINVAL
            if not self._is_local(src):
                return Errno.ENETUNREACH
            if ipv4.is_lbcast(dst) or ipv4.is_multicast(dst):
                # "Special hack" of ip_route_output_key_hash_rcu: leave by the device that owns
                # the source (the most recently added address wins the kernel's hash chain).
                owner = [d.name for d in self.devices.values() if any(a.local == src for a in d.addrs)][-1]
                return self._make_output(flow, "unicast", owner, None, src)
        if not dst:
            raise NotImplementedError("route get 0.0.0.0 is not modelled")
        found = self._fib.lookup(flow)
        if isinstance(found, Errno):
            return found
        route = found.route
        if route.type == "local":
            prefsrc = src or (route.prefsrc if route.prefsrc is not None else dst)
            return self._make_output(flow, "local", self.loopback, found, prefsrc)
        return self._make_output(flow, route.type, found.nexthop.dev, found, src or self._prefsrc(found))

    def _make_output(self, flow: Flow, kind: str, dev: str, found: FibResult | None, prefsrc: int) -> Answer | Errno:
        """``__mkroute_output``: the route type from the destination class, and the cache flags."""
        loopback = self.devices[dev].loopback
        if ipv4.is_loopback(prefsrc) and not loopback:
            return Errno.EINVAL
        if ipv4.is_lbcast(flow.dst):
            kind = "broadcast"
        elif ipv4.is_multicast(flow.dst):
            kind = "multicast"
        elif ipv4.is_zeronet(flow.dst):
            return Errno.EINVAL
        if kind == "broadcast":
            cache = ["local", "brd"]
        elif kind == "multicast":
            cache = ["mc"]
        else:
            cache = ["local"] if loopback else []
        return self._record(flow, kind, dev, found, prefsrc=prefsrc, cache=cache)
