"""HBONE as the lab's stand-in ztunnel speaks it: one HTTP/2 ``CONNECT`` stream (authority =
the destination pod's ``IP:port``) inside TLS 1.3 with ALPN ``h2`` and certificates on both
sides, whose SPIFFE IDs name the workloads.

HTTP/2 is ``h2``'s state machine; TLS is Python's ``ssl`` (OpenSSL). This module only wires
them to sockets: it opens or accepts the stream, then relays bytes between the stream and a
plain TCP socket, with HTTP/2 flow control (data is read from the plain side only as far as
the stream's window allows, and acknowledged as it is written out).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, ResponseReceived, StreamEnded, StreamReset

ALPN = "h2"


class HboneError(RuntimeError):
    """An HBONE connection that could not be made or was refused; the message says which step."""


class Refused(HboneError):
    """The peer refused the TLS connection, our certificate most likely, before HTTP/2 began.

    With TLS 1.3 the server checks the client's certificate after the client considers the
    handshake done, so the refusal reaches the client on its first write or read: as a TLS alert
    (``alert`` is its name, such as ``decrypt_error`` or ``unknown_ca``) or, when the alert was
    lost to the connection's reset, as the end of the connection (``alert`` is None)."""

    def __init__(self, alert: str | None, how: str) -> None:
        self.alert = alert
        said = f"TLS alert {alert}" if alert else f"no TLS alert arrived, {how}"
        super().__init__(f"refused by the peer before HTTP/2 began ({said})")


ALERT_PREFIXES = ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")


def alert_of(err: ssl.SSLError) -> str | None:
    """Return the name of the TLS alert the peer sent (``decrypt_error``), or None when ``err``
    is not an alert from the peer."""
    reason = err.reason or ""
    prefix = next((p for p in ALERT_PREFIXES if reason.startswith(p)), None)
    return reason[len(prefix):].lower() if prefix else None


def refusal(err: OSError) -> Refused | None:
    """Return the :class:`Refused` that ``err`` means when it ends a connection on which the
    peer has sent nothing of HTTP/2 yet, or None when ``err`` is something else (such as our
    own refusal of the peer's certificate)."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return None
    if isinstance(err, ssl.SSLError):
        alert = alert_of(err)
        if alert:
            return Refused(alert, "")
        if isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return Refused(None, "the connection ended")
        return None
    if isinstance(err, (ConnectionResetError, BrokenPipeError)):
        return Refused(None, "the connection was reset")
    return None


def _context(purpose: ssl.Purpose, cert: str, key: str, ca: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols([ALPN])
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = False  # identities are SPIFFE URIs, checked by the caller, not host names
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def server_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """Return a TLS 1.3, ALPN h2 server context that requires a client certificate from ``ca``."""
    ctx = _context(ssl.Purpose.CLIENT_AUTH, cert, key, ca)
    ctx.num_tickets = 0  # no session tickets: nothing arrives after the handshake but the stream
    return ctx


def client_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """Return a TLS 1.3, ALPN h2 client context that presents ``cert`` and trusts only ``ca``."""
    return _context(ssl.Purpose.SERVER_AUTH, cert, key, ca)


def peer_identity(tls: ssl.SSLSocket) -> str | None:
    """Return the SPIFFE ID (URI SAN) of the verified peer certificate, or None."""
    cert = tls.getpeercert() or {}
    uris = [value for kind, value in cert.get("subjectAltName", ()) if kind == "URI"]
    return uris[0] if uris else None


def tls_facts(tls: ssl.SSLSocket) -> dict[str, str | None]:
    """Return what was negotiated: TLS version, cipher, ALPN protocol."""
    cipher = tls.cipher()
    return {"tls": tls.version(), "cipher": cipher[0] if cipher else None, "alpn": tls.selected_alpn_protocol()}


@dataclass
class Stream:
    """One CONNECT stream on one HTTP/2 connection, with data received but not yet relayed."""

    tls: ssl.SSLSocket
    conn: H2Connection
    stream_id: int
    authority: str
    pending: list[bytes] = field(default_factory=list)
    ended: bool = False  # the peer ended its side of the stream

    def flush(self) -> None:
        """Send what the HTTP/2 state machine has queued."""
        out = self.conn.data_to_send()
        if out:
            self.tls.sendall(out)

    def take(self, events: list[object]) -> None:
        """Keep the stream's data and end from ``events``; raise on a reset or GOAWAY."""
        for ev in events:
            if isinstance(ev, DataReceived) and ev.stream_id == self.stream_id:
                self.pending.append(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded) and ev.stream_id == self.stream_id:
                self.ended = True
            elif isinstance(ev, StreamReset) and ev.stream_id == self.stream_id:
                raise HboneError(f"stream reset by the peer (error code {ev.error_code})")
            elif isinstance(ev, ConnectionTerminated):
                raise HboneError(f"connection closed by the peer (GOAWAY, error code {ev.error_code})")


def _recv(tls: ssl.SSLSocket) -> bytes | None:
    """Return the bytes TLS has for us now, b"" at the end, None if none is ready yet."""
    tls.setblocking(False)
    try:
        return tls.recv(65536)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return None
    finally:
        tls.setblocking(True)


def _read_events(tls: ssl.SSLSocket, conn: H2Connection, what: str, first: bool = False) -> list[object]:
    """Return the HTTP/2 events of the next bytes from the peer. ``first``: nothing has come from
    the peer yet, so an alert or the end of the connection is its refusal (:class:`Refused`)."""
    try:
        data = tls.recv(65536)
    except OSError as err:
        refused = refusal(err) if first else None
        if refused:
            raise refused from err
        if isinstance(err, ssl.SSLError):
            raise HboneError(f"TLS: {err.reason or err}") from err
        raise
    if not data:
        if first:
            raise Refused(None, "the connection ended")
        raise HboneError(f"the peer closed the connection before {what}")
    return list(conn.receive_data(data))


def open_stream(tls: ssl.SSLSocket, authority: str) -> Stream:
    """Send ``CONNECT authority`` on a new HTTP/2 connection over ``tls``; return the stream once
    the peer answers 200, else raise :class:`HboneError` with the status or the TLS error, and
    :class:`Refused` when the peer refuses the TLS connection (our certificate) first."""
    if tls.selected_alpn_protocol() != ALPN:
        raise HboneError(f"the peer did not agree to ALPN {ALPN!r}")
    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream = Stream(tls, conn, conn.get_next_available_stream_id(), authority)
    conn.send_headers(stream.stream_id, [(":method", "CONNECT"), (":authority", authority)])
    try:
        stream.flush()
    except OSError as err:
        # The peer may have refused us already: its alert, if one came, is the better answer.
        refused = refusal(err)
        if refused is None:
            raise
        try:
            _read_events(tls, conn, "answering CONNECT", first=True)
        except Refused as alerted:
            raise (alerted if alerted.alert else refused) from err
        except OSError:
            pass
        raise refused from err
    first = True
    while True:
        events = _read_events(tls, conn, "answering CONNECT", first=first)
        first = False
        status = next((dict(ev.headers).get(":status") for ev in events
                       if isinstance(ev, ResponseReceived) and ev.stream_id == stream.stream_id), None)
        refused = status is not None and status != "200"
        if refused:
            raise HboneError(f"CONNECT {authority} refused: status {status}")  # the peer may be gone already
        stream.take(events)
        try:
            stream.flush()
        except OSError as err:
            raise HboneError(f"the peer closed the connection while {authority} was being opened ({err})") from err
        if status is not None:
            return stream


def accept_stream(tls: ssl.SSLSocket) -> Stream:
    """Read the first request of a new HTTP/2 connection over ``tls``; return its stream (not
    answered yet: see :func:`answer`). Raise :class:`HboneError` for anything but CONNECT."""
    conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    while True:
        events = _read_events(tls, conn, "sending a request")
        request = next((ev for ev in events if isinstance(ev, RequestReceived)), None)
        if request is None:
            tls.sendall(conn.data_to_send())
            continue
        headers = dict(request.headers)
        stream = Stream(tls, conn, request.stream_id, str(headers.get(":authority", "")))
        stream.take(events)
        if headers.get(":method") != "CONNECT":
            answer(stream, "405")
            raise HboneError(f"{headers.get(':method')} is not CONNECT")
        return stream


def answer(stream: Stream, status: str) -> None:
    """Answer the stream's request with ``status``; anything but 200 also ends the stream."""
    stream.conn.send_headers(stream.stream_id, [(":status", status)], end_stream=status != "200")
    stream.flush()


def relay(stream: Stream, plain: socket.socket, idle: float = 30.0) -> tuple[int, int]:
    """Copy bytes both ways between ``stream`` and ``plain`` until both sides have ended (or
    nothing moved for ``idle`` seconds); return (bytes into the stream, bytes out of it)."""
    into = out_of = 0
    reading = True  # the plain side has not ended
    while True:
        for data in stream.pending:
            plain.sendall(data)
            out_of += len(data)
        stream.pending.clear()
        if stream.ended:
            with contextlib.suppress(OSError):
                plain.shutdown(socket.SHUT_WR)
            if not reading:
                break
        window = stream.conn.local_flow_control_window(stream.stream_id) if reading else 0
        watch = [stream.tls] + ([plain] if window > 0 else [])
        ready = [stream.tls] if stream.tls.pending() else select.select(watch, [], [], idle)[0]
        if not ready:
            break
        if stream.tls in ready:
            data = _recv(stream.tls)
            if data == b"":
                break
            if data:
                stream.take(list(stream.conn.receive_data(data)))
        if plain in ready:
            chunk = plain.recv(min(window, stream.conn.max_outbound_frame_size, 65536))
            if chunk:
                stream.conn.send_data(stream.stream_id, chunk)
                into += len(chunk)
            else:
                stream.conn.end_stream(stream.stream_id)
                reading = False
        try:
            stream.flush()
        except OSError:
            if reading:
                raise
            # All our data and our end were sent; what is left is flow-control acknowledgements
            # for a peer that has finished and closed: keep relaying what it sent.
    return into, out_of
