"""What crosses the underlay between the two nodes of a two-node lab, read back from a pcap
(recorded by :func:`ambientlab.live.lab.wire.sniff`) and walked as TLS records.

A pcap is read with ``struct`` (Ethernet, IPv4, TCP/UDP; nothing else is on a lab wire): each
frame becomes a record with addresses, ports, TCP flags and the payload in hex. TLS records
are walked per direction of each TCP flow, in capture order (a veth neither loses nor
reorders), so a record split across segments is still read whole.
"""

from __future__ import annotations

import struct
from typing import Any

import pandas as pd

TLS_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}
HANDSHAKE_TYPES = {1: "ClientHello", 2: "ServerHello"}
_TCP_FLAGS = "FSRPAU"


class PcapError(ValueError):
    """A capture file this reader cannot read; the message names the frame and the byte."""


def read_pcap(data: bytes, source: str = "pcap") -> list[dict[str, Any]]:
    """Return one record per frame of a classic pcap (Ethernet): number, src, dst, proto,
    sport, dport, flags (TCP), seq, length and hex payload. Raise :class:`PcapError` naming the
    frame for anything else (another link type, a truncated frame, a non-IPv4 frame)."""
    if len(data) < 24:
        raise PcapError(f"{source}: {len(data)} bytes is no pcap header")
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<",
             b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if order is None:
        raise PcapError(f"{source}: byte 0: magic {magic.hex()} is not a pcap's")
    linktype = struct.unpack(order + "I", data[20:24])[0]
    if linktype != 1:
        raise PcapError(f"{source}: link type {linktype}, only Ethernet (1) is read")
    out, at, number = [], 24, 0
    while at < len(data):
        number += 1
        if at + 16 > len(data):
            raise PcapError(f"{source}: frame {number} at byte {at}: truncated record header")
        caplen, wirelen = struct.unpack(order + "II", data[at + 8:at + 16])
        frame = data[at + 16:at + 16 + caplen]
        if len(frame) < caplen or caplen < wirelen:
            raise PcapError(f"{source}: frame {number} at byte {at}: cut short ({caplen} of {wirelen} bytes)")
        out.append(_frame(frame, number, source))
        at += 16 + caplen
    return out


def _frame(frame: bytes, number: int, source: str) -> dict[str, Any]:
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype != 0x0800:
        raise PcapError(f"{source}: frame {number}: ethertype 0x{ethertype:04x} is not IPv4")
    ip = frame[14:]
    ihl, total, proto = (ip[0] & 0x0F) * 4, struct.unpack("!H", ip[2:4])[0], ip[9]
    src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
    body = ip[ihl:total]
    rec: dict[str, Any] = {"frame": number, "src": src, "dst": dst}
    if proto == 6:
        sport, dport, seq = struct.unpack("!HHI", body[:8])
        offset, flags = (body[12] >> 4) * 4, body[13]
        rec |= {"proto": "tcp", "sport": sport, "dport": dport, "seq": seq,
                "flags": "".join(f for i, f in enumerate(_TCP_FLAGS) if flags & (1 << i)), "payload": body[offset:].hex()}
    elif proto == 17:
        sport, dport = struct.unpack("!HH", body[:4])
        rec |= {"proto": "udp", "sport": sport, "dport": dport, "seq": None, "flags": "", "payload": body[8:].hex()}
    else:
        raise PcapError(f"{source}: frame {number}: IP protocol {proto} is neither TCP nor UDP")
    rec["length"] = len(rec["payload"]) // 2
    return rec


def tls_records(frames: pd.DataFrame, port: int) -> pd.DataFrame:
    """Return the TLS records of the TCP flows to or from ``port`` in ``frames`` (records of
    :func:`read_pcap`): flow, direction, record type, handshake message, TLS version and
    length, and the ALPN protocols a ClientHello offers. Bytes that are not a TLS record header end the walk of that direction with a row
    of type ``not TLS``."""
    rows = []
    tcp = frames[(frames["proto"] == "tcp") & ((frames["sport"] == port) | (frames["dport"] == port))]
    for (src, sport, dst, dport), seg in tcp.groupby(["src", "sport", "dst", "dport"], sort=False):
        stream = bytes.fromhex("".join(seg["payload"]))
        flow, direction = f"{src}:{sport} > {dst}:{dport}", "to server" if dport == port else "to client"
        at = 0
        while at + 5 <= len(stream):
            kind, major, minor, length = stream[at], stream[at + 1], stream[at + 2], struct.unpack("!H", stream[at + 3:at + 5])[0]
            if kind not in TLS_TYPES or major != 3:
                rows.append({"flow": flow, "direction": direction, "record": "not TLS", "message": "",
                             "version": "", "length": len(stream) - at, "alpn": ""})
                break
            body = stream[at + 5:at + 5 + length]
            message = HANDSHAKE_TYPES.get(body[0], "") if kind == 22 and body else ""
            rows.append({"flow": flow, "direction": direction, "record": TLS_TYPES[kind], "message": message,
                         "version": f"0x03{minor:02x}", "length": length,
                         "alpn": ",".join(client_hello_alpn(body)) if message == "ClientHello" else ""})
            at += 5 + length
    return pd.DataFrame(rows, columns=["flow", "direction", "record", "message", "version", "length", "alpn"])


def client_hello_alpn(body: bytes) -> list[str]:
    """Return the protocols a ClientHello handshake message (``body``) offers by ALPN (in the
    clear: TLS 1.3 encrypts only what follows the ServerHello)."""
    at = 4 + 2 + 32  # handshake header, legacy version, random
    at += 1 + body[at]  # session id
    at += 2 + struct.unpack("!H", body[at:at + 2])[0]  # cipher suites
    at += 1 + body[at]  # compression methods
    end = at + 2 + struct.unpack("!H", body[at:at + 2])[0]
    at += 2
    while at + 4 <= end:
        kind, length = struct.unpack("!HH", body[at:at + 4])
        if kind == 16:  # application_layer_protocol_negotiation
            data, out, i = body[at + 6:at + 4 + length], [], 0
            while i < len(data):
                out.append(data[i + 1:i + 1 + data[i]].decode())
                i += 1 + data[i]
            return out
        at += 4 + length
    return []


def plaintext_hits(frames: pd.DataFrame, needle: str) -> list[str]:
    """Return the TCP flows (``src:sport > dst:dport``) whose bytes, put back together in
    capture order, contain ``needle`` (UTF-8) in the clear."""
    want = needle.encode()
    tcp = frames[frames["proto"] == "tcp"]
    return [f"{src}:{sport} > {dst}:{dport}"
            for (src, sport, dst, dport), seg in tcp.groupby(["src", "sport", "dst", "dport"], sort=False)
            if want in bytes.fromhex("".join(seg["payload"]))]
