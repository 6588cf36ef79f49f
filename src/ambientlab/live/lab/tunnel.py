"""The HBONE side of the lab's stand-in ztunnel, and a bare HBONE client.

The configuration (written by ``lab up`` for a two-node lab) names this ztunnel's node, the
folder of the lab CA's certificates, and every workload: IP, pod, node, service account,
SPIFFE ID. ztunnel holds the certificates of the workloads on its own node only, and uses
them as Istio's ztunnel does: the source workload's on the client side of HBONE, the
destination workload's on the server side.

What the stand-in checks on port 15008: the client certificate chains to the lab CA (TLS),
ALPN is h2, the request is ``CONNECT``, and its target is a workload on this node. It then
dials the target with the peer's address (the Sept 2022 design: Envoy's ``original_src``) and
relays. What it does not do: connection pooling, authorization policy, telemetry.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambientlab.core.constants import HBONE_PORT as PORT
from ambientlab.live.lab.hbone import (
    HboneError,
    Refused,
    accept_stream,
    answer,
    client_context,
    open_stream,
    peer_identity,
    refusal,
    relay,
    server_context,
    tls_facts,
)
from ambientlab.live.lab.sockets import addr_text, dial, error_text

Log = Callable[..., None]


def _split(authority: str) -> tuple[str, int]:
    host, _, port = authority.rpartition(":")
    if not host or not port.isdigit():
        raise HboneError(f"CONNECT authority {authority!r} is not IP:port")
    return host, int(port)


@dataclass
class Hbone:
    """One node's HBONE endpoint: its workloads' certificates, and the cluster's workloads."""

    node: str
    pki: Path
    workloads: dict[str, dict[str, str]]  # IP -> {name, node, account, identity}
    log: Log

    @classmethod
    def from_file(cls, path: str, log: Log) -> Hbone:
        """Return the endpoint described by the JSON configuration at ``path``."""
        config = json.loads(Path(path).read_text())
        return cls(config["node"], Path(config["pki"]), config["workloads"], log)

    def remote(self, ip: str) -> bool:
        """Return whether ``ip`` is a workload on another node (reached through HBONE)."""
        found = self.workloads.get(ip)
        return bool(found) and found["node"] != self.node

    def _local(self, ip: str) -> dict[str, str] | None:
        found = self.workloads.get(ip)
        return found if found and found["node"] == self.node else None

    def _files(self, account: str) -> tuple[str, str, str]:
        return str(self.pki / f"{account}.pem"), str(self.pki / f"{account}.key"), str(self.pki / "ca.pem")

    def outbound(self, conn: socket.socket, peer: tuple[str, int], dst: tuple[str, int], _mark: int,
                 timeout: float) -> None:
        """Carry a connection captured on 15001 to ``dst`` (a pod on another node) over HBONE."""
        event: dict[str, Any] = {"event": "tunnel", "direction": "outbound", "listener": 15001, "peer": addr_text(peer),
                                 "original_dst": addr_text(dst)}
        source = self._local(peer[0])
        want = self.workloads[dst[0]]["identity"]
        try:
            if source is None:
                raise HboneError(f"{peer[0]} is not a workload on {self.node}: no certificate to use")
            event["source_identity"] = source["identity"]
            sock = socket.create_connection((dst[0], PORT), timeout=timeout)  # from ztunnel's own address
            tls = client_context(*self._files(source["account"])).wrap_socket(sock)
            event["hbone"] = f"{addr_text(tls.getsockname())} -> {addr_text(tls.getpeername())}"
            got = peer_identity(tls)
            if got != want:
                tls.close()
                raise HboneError(f"the peer presented {got}, not {want}")
            event["destination_identity"] = got
            event.update(tls_facts(tls))
            stream = open_stream(tls, addr_text(dst))
            tls.settimeout(None)
        except (OSError, HboneError) as err:
            self.log(**{**event, "event": "refused", "error": error_text(err)})
            conn.close()
            return
        event["authority"] = stream.authority
        try:
            up, down = relay(stream, conn)
        except (OSError, HboneError) as err:
            self.log(**event, error=error_text(err))
        else:
            self.log(**event, bytes_up=up, bytes_down=down)
        finally:
            with contextlib.suppress(OSError):
                tls.close()
            conn.close()

    def inbound(self, conn: socket.socket, peer: tuple[str, int], dst: tuple[str, int], onward_mark: int,
                timeout: float) -> None:
        """Terminate HBONE that arrived on 15008 for ``dst``: TLS with the destination's
        certificate, the client's identity, CONNECT to a workload of this node, then relay."""
        event: dict[str, Any] = {"event": "tunnel", "direction": "inbound", "listener": PORT, "peer": addr_text(peer),
                                 "original_dst": addr_text(dst)}
        here = self._local(dst[0])
        tls = None
        try:
            if here is None:
                raise HboneError(f"{dst[0]} is not a workload on {self.node}: no certificate to answer with")
            conn.settimeout(timeout)
            tls = server_context(*self._files(here["account"])).wrap_socket(conn, server_side=True)
            event["source_identity"] = peer_identity(tls)
            event["destination_identity"] = here["identity"]
            event.update(tls_facts(tls))
            stream = accept_stream(tls)
            event["authority"] = stream.authority
            target = _split(stream.authority)
            if self._local(target[0]) is None:
                answer(stream, "400")
                raise HboneError(f"CONNECT target {stream.authority} is not a workload on {self.node}")
            try:
                out = dial(peer[0], target, onward_mark, timeout)  # the borrowed source: the peer's address
            except OSError as err:
                answer(stream, "503")
                raise HboneError(f"cannot reach {stream.authority}: {error_text(err)}") from err
            answer(stream, "200")
            tls.settimeout(None)
        except (OSError, ssl.SSLError, HboneError) as err:
            reason = f"TLS: {err.reason}" if isinstance(err, ssl.SSLError) and err.reason else error_text(err)
            self.log(**{**event, "event": "refused", "error": reason})
            with contextlib.suppress(OSError):
                (tls or conn).close()
            return
        event["onward"] = f"{addr_text(out.getsockname())} -> {addr_text(out.getpeername())}"
        try:
            into, out_of = relay(stream, out)
        except (OSError, HboneError) as err:
            self.log(**event, error=error_text(err))
        else:
            self.log(**event, bytes_up=out_of, bytes_down=into)
        finally:
            out.close()
            with contextlib.suppress(OSError):
                tls.close()


def client(to: str, authority: str, cert: str, key: str, ca: str, timeout: float = 2.0) -> int:
    """Open HBONE to ``to`` (IP, port 15008) and ``CONNECT authority``; print the server's
    greeting, or ``error: …``. Return 0 on a greeting. (A workload-less client, for testing
    what ztunnel refuses: another CA's certificate, a target not on that node.)"""
    try:
        sock = socket.create_connection((to, PORT), timeout=timeout)
        tls = client_context(cert, key, ca).wrap_socket(sock)
        stream = open_stream(tls, authority)
        while not stream.pending and not stream.ended:
            data = tls.recv(65536)
            if not data:
                break
            stream.take(list(stream.conn.receive_data(data)))
            stream.flush()
        print(b"".join(stream.pending).decode().strip() or "error: closed without a greeting")
        tls.close()
        return 0 if stream.pending else 1
    except Refused as err:
        print(f"error: {err}")
    except ssl.SSLError as err:
        refused = refusal(err)
        print(f"error: {refused}" if refused else f"error: TLS: {err.reason or err}")
    except (OSError, HboneError) as err:
        print(f"error: {error_text(err)}")
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m ambientlab.live.lab.tunnel client TO AUTHORITY --cert … --key … --ca …``."""
    parser = argparse.ArgumentParser(prog="python -m ambientlab.live.lab.tunnel")
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("client")
    c.add_argument("to")
    c.add_argument("authority")
    c.add_argument("--cert", required=True)
    c.add_argument("--key", required=True)
    c.add_argument("--ca", required=True)
    c.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    return client(args.to, args.authority, args.cert, args.key, args.ca, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
