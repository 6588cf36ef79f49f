"""Hosts joined by veths and tunnels: one packet followed from host to host.

A :class:`Network` holds :class:`Machine` objects (a :class:`~ambientlab.core.trace.host.Host`
with its netfilter rules, ipsets, conntrack table and sockets), the veth pairs between them,
the tunnel devices (matched by VNI and remote address, encapsulating in UDP 6081), pod
endpoints, and exits to the rest of the cluster. :meth:`Network.send` follows one packet and
returns its hops as records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ambientlab.core.trace import ipv4
from ambientlab.core.trace.host import Host
from ambientlab.core.trace.netfilter import Conn, Hit, Packet, Ruleset

GENEVE_PORT = 6081
NAT_TARGETS = ("DNAT", "SNAT", "MASQUERADE", "REDIRECT")


def _translated(reply: bool, manip: str) -> str:
    """Return what conntrack did to a packet of a translated connection (no nat rule ran)."""
    if reply:
        return ("reply: destination translated back to the client's own address (the connection's SNAT undone)"
                if manip == "dst" else
                "reply: source translated back to the address the client dialled (the connection's DNAT undone)")
    return (f"{'destination' if manip == 'dst' else 'source'} rewritten as for the connection's first packet "
            f"({'DNAT' if manip == 'dst' else 'SNAT'} kept by conntrack)")
HOP_COLUMNS = ("packet", "host", "hook", "where", "matched", "line", "mark_before", "mark_after", "ctmark",
               "iif", "oif", "headers")


@dataclass
class Socket:
    """A socket on a machine: a listener (``remote`` None) or one connection."""

    name: str
    local: tuple[int, int]
    remote: tuple[int, int] | None = None
    transparent: bool = False
    mark: int = 0


@dataclass
class Tunnel:
    """A geneve (or vxlan stand-in) device: VNI, remote address, UDP port."""

    vni: int
    remote: int
    port: int = GENEVE_PORT


@dataclass
class Machine:
    """A host with its packet filter and state."""

    host: Host
    rules: Ruleset | None = None
    # (zone, src, dst, proto, sport, dport) -> (entry, whether this tuple is the entry's reply direction)
    conntrack: dict[tuple[int, int, int, int, int, int], tuple[Conn, bool]] = field(default_factory=dict)
    sockets: list[Socket] = field(default_factory=list)
    tunnels: dict[str, Tunnel] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Return the host's name."""
        return self.host.name

    def track(self, packet: Packet) -> None:
        """Attach ``packet`` to its conntrack entry in its zone (creating one for a new connection)."""
        tuple_ = (packet.src, packet.dst, packet.proto, packet.sport, packet.dport)
        key = (packet.zone, *tuple_)
        found = self.conntrack.get(key)
        if found is None:
            conn = Conn(tuple_, zone=packet.zone)
            self.conntrack[key] = (conn, False)
            found = (conn, False)
        packet.conn, packet.reply = found
        if packet.reply:
            packet.conn.replied = True

    def confirm(self, packet: Packet) -> None:
        """Register the reply tuple of ``packet``'s connection (conntrack confirmation)."""
        conn = packet.conn
        if conn is not None and not packet.reply:
            self.conntrack.setdefault((conn.zone, *conn.reply_tuple()), (conn, True))

    def socket_for(self, packet: Packet) -> Socket | None:
        """Return the socket that receives ``packet`` locally (TPROXY's choice first)."""
        for sock in self.sockets:
            if sock.remote and sock.local == (packet.dst, packet.dport) and sock.remote == (packet.src, packet.sport):
                return sock
        if packet.tproxy:  # the listener on the TPROXY address and port, or on any address and that port
            ip, port = packet.tproxy
            return next((s for s in self.sockets if s.remote is None and s.local[1] == port and s.local[0] in (ip, 0)
                         and s.transparent), None)
        for sock in self.sockets:
            if sock.remote is None and sock.local[1] == packet.dport and sock.local[0] in (0, packet.dst):
                return sock
        return None


@dataclass
class Exit:
    """Where a device leads outside the modelled hosts (a pod, or the rest of the cluster)."""

    kind: str  # "pod" or "world"
    name: str


def arrival(exit: Exit) -> str:
    """Return the hop text of a packet that leaves the modelled hosts through ``exit``."""
    return f"arrives in pod {exit.name}" if exit.kind == "pod" else f"leaves for {exit.name}"


class Network:
    """Machines, the wires between them, and the walk of single packets."""

    def __init__(self) -> None:
        self.machines: dict[str, Machine] = {}
        self.wires: dict[tuple[str, str], tuple[str, str] | Exit] = {}
        self.entries: dict[str, tuple[str, str]] = {}  # pod or outside name -> (machine, device) it sends into
        # a hop row where conntrack translates a packet that no nat rule saw (a reply, a later packet):
        # on for the kube-proxy walks; off elsewhere, so that the other walks' tables stay as published
        self.show_conntrack = False
        # the delivery row of a REDIRECTed TCP connection names the original destination the listener
        # reads with getsockopt(SO_ORIGINAL_DST): on for today's in-pod walks
        self.show_original_dst = False

    def add(self, machine: Machine) -> None:
        """Add a machine."""
        self.machines[machine.name] = machine

    def veth(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        """Join device ``a`` = (machine, dev) and ``b`` with a veth pair."""
        self.wires[a], self.wires[b] = b, a

    def exit(self, end: tuple[str, str], where: Exit) -> None:
        """Say that device ``end`` leads to ``where``, which can then send packets into it by name."""
        self.wires[end] = where
        self.entries[where.name] = end

    # -- walking -------------------------------------------------------------------------------------
    def send(self, label: str, packet: Packet, *, origin: str, socket_mark: int = 0,
             transparent: bool = False) -> list[dict[str, Any]]:
        """Follow ``packet`` from ``origin`` (a pod or outside name, or a machine name for a
        packet its socket sends) until it is delivered, dropped or leaves the modelled hosts.

        Return the hops as records with :data:`HOP_COLUMNS`.
        """
        hops: list[dict[str, Any]] = []
        if origin in self.entries:
            machine, dev = self.entries[origin]
            hops.append(self._hop(label, origin, "wire", f"into {machine}/{dev}", f"sent by {origin}", None, packet,
                                  packet.mark, oif="eth0"))
            packet.enter(dev)
            self._receive(label, self.machines[machine], packet, hops)
        else:
            packet.mark, packet.socket = socket_mark, True
            self._output(label, self.machines[origin], packet, hops, transparent)
        return hops

    def _hop(self, label: str, host: str, hook: str, where: str, matched: str, line: str | None, packet: Packet,
             before: int, *, iif: str | None = None, oif: str | None = None) -> dict[str, Any]:
        return {"packet": label, "host": host, "hook": hook, "where": where, "matched": matched, "line": line,
                "mark_before": hex(before), "mark_after": hex(packet.mark),
                "ctmark": hex(packet.conn.mark) if packet.conn else None,
                "iif": iif if iif is not None else packet.iif, "oif": oif if oif is not None else packet.oif,
                "headers": packet.describe()}

    def _hits(self, label: str, machine: Machine, hook: str, hits: list[Hit], packet: Packet,
              hops: list[dict[str, Any]]) -> None:
        source = machine.rules.source if machine.rules else ""
        for hit in hits:
            row = self._hop(label, machine.name, hook, f"{hit.table} {hit.chain}", hit.text, f"{source}:{hit.line}",
                            packet, hit.mark_before)
            row["mark_after"] = hex(hit.mark_after)
            row["ctmark"] = hex(hit.ctmark) if hit.ctmark is not None else None
            hops.append(row)

    def _hook(self, label: str, machine: Machine, hook: str, packet: Packet, hops: list[dict[str, Any]],
              track: bool = False) -> bool:
        """Run ``hook``; apply NAT; return False if the packet is dropped. With ``track`` the raw
        table runs first, then conntrack looks the packet up (in the zone raw chose), then the
        other tables: the kernel's order (raw -300, conntrack -200)."""
        if machine.rules is None:
            if track:
                machine.track(packet)
            return True
        machine.rules.is_local = machine.host.is_local
        if track:
            raw = machine.rules.run(hook, packet, False, tables=("raw",))
            self._hits(label, machine, hook, raw.hits, packet, hops)
            if raw.action != "ACCEPT":
                hops.append(self._hop(label, machine.name, hook, "verdict", raw.action, None, packet, packet.mark))
                return False
            machine.track(packet)
        conn = packet.conn
        manip = {"PREROUTING": "dst", "OUTPUT": "dst", "POSTROUTING": "src", "INPUT": "src"}.get(hook)
        nat = manip is not None and conn is not None and not packet.reply and manip not in conn.nat_done
        rest = tuple(t for t in ("raw", "mangle", "nat", "filter") if not (track and t == "raw"))
        verdict = machine.rules.run(hook, packet, nat, tables=rest)
        self._hits(label, machine, hook, verdict.hits, packet, hops)
        if conn is not None and manip is not None:
            if nat:
                conn.nat_done.add(manip)
            before = packet.describe() if self.show_conntrack else ""
            self._apply_nat(packet, conn, manip)
            if (self.show_conntrack and packet.describe() != before
                    and not any(h.target in NAT_TARGETS for h in verdict.hits)):
                hops.append(self._hop(label, machine.name, hook, "conntrack", _translated(packet.reply, manip), None,
                                      packet, packet.mark))
        if verdict.action != "ACCEPT":
            hops.append(self._hop(label, machine.name, hook, "verdict", verdict.action, None, packet, packet.mark))
            return False
        return True

    @staticmethod
    def _apply_nat(packet: Packet, conn: Conn, manip: str) -> None:
        if not packet.reply:
            if manip == "dst" and conn.dnat:
                packet.dst, packet.dport = conn.dnat
            if manip == "src" and conn.snat:
                packet.src, packet.sport = conn.snat
        else:
            if manip == "dst" and conn.snat:
                packet.dst, packet.dport = conn.orig[0], conn.orig[3]
            if manip == "src" and conn.dnat:
                packet.src, packet.sport = conn.orig[1], conn.orig[4]

    def _route(self, label: str, machine: Machine, packet: Packet, hops: list[dict[str, Any]], *, output: bool,
               anysrc: bool = False) -> dict[str, Any]:
        answer = machine.host.route_get(
            ipv4.to_text(packet.dst), ipv4.to_text(packet.src) if packet.src else None,
            None if output else packet.iif, packet.mark, proto=packet.proto, sport=packet.sport,
            dport=packet.dport, anysrc=anysrc)
        route = answer.get("_route")
        if "dev" in answer and machine.rules is not None and machine.rules.masquerades:
            # MASQUERADE's source: the out device's address toward the next hop
            hop = ipv4.to_int(answer["gateway"]) if "gateway" in answer else packet.dst
            packet.masquerade_ip = machine.host.masquerade_source(answer["dev"], hop)
        for rule in (answer.get("_via"), answer.get("_rule")):  # a goto that led to the deciding rule first
            if rule is not None:
                hops.append(self._hop(label, machine.name, "routing", "ip rule", rule.text.replace("\t", " "),
                                      f"{rule.source}:{rule.line}", packet, packet.mark))
        if route is not None:
            from ambientlab.core.parse.ip_route import render_route

            hops.append(self._hop(label, machine.name, "routing", f"table {ipv4.table_name(route.table)}",
                                  render_route(route.record), f"{route.source}:{route.line}", packet, packet.mark,
                                  oif=answer.get("dev")))
        if "error" in answer:
            hops.append(self._hop(label, machine.name, "routing", "error", answer["error"], None, packet, packet.mark))
        return answer

    def _receive(self, label: str, machine: Machine, packet: Packet, hops: list[dict[str, Any]],
                 looped: bool = False) -> None:
        packet.redirect_ip = next(iter(a.local for a in machine.host.devices[packet.iif].addrs), 0)
        # a looped-back packet keeps its conntrack entry (skb->_nfct): no lookup
        if not self._hook(label, machine, "PREROUTING", packet, hops, track=not (looped and packet.conn is not None)):
            return
        if looped:  # a looped-back packet keeps its route (skb_dst): no input lookup
            answer: dict[str, Any] = {"type": "local"}
        else:
            answer = self._route(label, machine, packet, hops, output=False)
        if "error" in answer:
            return
        if answer.get("type") in ("local", "broadcast"):
            if self._hook(label, machine, "INPUT", packet, hops):
                machine.confirm(packet)
                self._deliver(label, machine, packet, hops)
            return
        packet.oif = answer["dev"]
        if not self._hook(label, machine, "FORWARD", packet, hops):
            return
        self._transmit(label, machine, packet, hops)

    def _output(self, label: str, machine: Machine, packet: Packet, hops: list[dict[str, Any]], transparent: bool,
                indev: str | None = None) -> None:
        answer = self._route(label, machine, packet, hops, output=True, anysrc=transparent)
        if "error" in answer:
            return
        if indev is not None and answer["dev"] == indev:  # geneve_get_v4_rt / vxlan: "circular route"
            hops.append(self._hop(label, machine.name, "wire", f"tunnel {indev}", "dropped by the tunnel driver: "
                                  f"its outer packet would be routed into {indev} again (circular route)", None,
                                  packet, packet.mark, oif=indev))
            return
        if not packet.src:
            packet.src = ipv4.to_int(answer.get("prefsrc", answer.get("from", "0.0.0.0")))
        packet.oif, packet.iif = answer["dev"], None
        packet.redirect_ip = 0x7F000001
        before = (packet.mark, packet.dst, packet.dport)
        if not self._hook(label, machine, "OUTPUT", packet, hops, track=True):
            return
        if (packet.mark, packet.dst, packet.dport) != before:  # ip_route_me_harder
            answer = self._route(label, machine, packet, hops, output=True, anysrc=True)
            if "error" in answer:
                return
            packet.oif = answer["dev"]
        packet.iif = indev  # ip_output() passes skb->dev as POSTROUTING's in-device: the tunnel, if any
        self._transmit(label, machine, packet, hops)

    def _transmit(self, label: str, machine: Machine, packet: Packet, hops: list[dict[str, Any]]) -> None:
        if not self._hook(label, machine, "POSTROUTING", packet, hops):
            return
        machine.confirm(packet)
        dev = packet.oif
        assert dev is not None
        if machine.host.devices[dev].loopback:  # looped back: received again on lo
            packet.iif, packet.oif, packet.socket = dev, None, False
            hops.append(self._hop(label, machine.name, "wire", dev, "looped back: received on lo with its route", None,
                                  packet, packet.mark))
            self._receive(label, machine, packet, hops, looped=True)
            return
        tunnel = machine.tunnels.get(dev)
        if tunnel is not None:
            self._encapsulate(label, machine, dev, tunnel, packet, hops)
            return
        peer = self.wires.get((machine.name, dev))
        if isinstance(peer, Exit) or peer is None:
            what = arrival(peer) if isinstance(peer, Exit) else "leaves by an unmodelled device"
            row = self._hop(label, machine.name, "wire", dev, what, None, packet, packet.mark)
            if isinstance(peer, Exit):  # into a pod or onto the underlay: a new namespace, the mark and the
                row["mark_after"], row["ctmark"] = hex(0), None  # conntrack entry stay behind
            hops.append(row)
            return
        other, other_dev = peer
        row = self._hop(label, machine.name, "wire", f"veth {dev} -> {other}/{other_dev}",
                        "crosses a veth: mark and conntrack reset", None, packet, packet.mark)
        # the mark is cleared on the way into the other namespace, and its conntrack has no entry yet
        row["mark_after"], row["ctmark"] = hex(0), None
        hops.append(row)
        packet.enter(other_dev)
        self._receive(label, self.machines[other], packet, hops)

    def _encapsulate(self, label: str, machine: Machine, dev: str, tunnel: Tunnel, inner: Packet,
                     hops: list[dict[str, Any]]) -> None:
        # The outer UDP packet keeps the inner packet's mark for its route lookup (geneve_get_v4_rt)
        # and is sent through this host's OUTPUT and POSTROUTING hooks like any local packet.
        outer = Packet(src=0, dst=tunnel.remote, proto=17, sport=49152 + inner.sport % 16384, dport=tunnel.port,
                       flags=f"VNI {tunnel.vni}: {inner.describe()}")
        hops.append(self._hop(label, machine.name, "wire", f"tunnel {dev}", f"encapsulated: UDP to "
                              f"{ipv4.to_text(tunnel.remote)}:{tunnel.port}, VNI {tunnel.vni}", None, inner, inner.mark))
        outer.mark, outer.inner, outer.vni = inner.mark, inner, tunnel.vni
        self._output(label, machine, outer, hops, transparent=False, indev=dev)

    def _deliver(self, label: str, machine: Machine, packet: Packet, hops: list[dict[str, Any]]) -> None:
        if packet.proto == 17 and packet.dport == GENEVE_PORT:
            for dev, tunnel in machine.tunnels.items():
                inner = packet.inner
                if tunnel.remote == packet.src and tunnel.vni == packet.vni and inner is not None:
                    hops.append(self._hop(label, machine.name, "deliver", f"tunnel {dev}",
                                          f"decapsulated onto {dev} (mark kept: same namespace)", None, packet, packet.mark))
                    inner.enter(dev, mark=packet.mark)
                    self._receive(label, machine, inner, hops)
                    return
        sock = machine.socket_for(packet)
        text = f"socket {sock.name}" if sock else "no socket: the kernel answers with a reset"
        conn = packet.conn
        if (sock and self.show_original_dst and conn is not None and conn.dnat and not packet.reply
                and packet.proto == 6):
            text += (f"; SO_ORIGINAL_DST gives it {ipv4.to_text(conn.orig[1])}:{conn.orig[4]}, the destination "
                     "before REDIRECT (read from conntrack)")
        hops.append(self._hop(label, machine.name, "deliver", "socket", text, None, packet, packet.mark))
