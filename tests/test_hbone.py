"""HBONE without root: the HTTP/2 CONNECT + mutual TLS code over socket pairs, the lab CA's
certificates, the second node's plan, the pcap reader, and the recorded two-node session
(data/lab-2026-11-hbone) against the tracer."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ambientlab import load_capture
from ambientlab.core.parse.wire import PcapError, plaintext_hits, read_pcap, tls_records
from ambientlab.core.recordings import recorded_trace, recorded_traces
from ambientlab.core.trace.breaks import remove_ip_rule
from ambientlab.core.trace.nftrace import compare, kernel_segments
from ambientlab.core.trace.predict import HboneConnection, predict_hbone
from ambientlab.live.lab.hbone import (
    HboneError,
    Refused,
    accept_stream,
    answer,
    client_context,
    open_stream,
    peer_identity,
    relay,
    server_context,
    tls_facts,
)
from ambientlab.live.lab.hbone_session import BEHAVIOURS, LINE
from ambientlab.live.lab.pki import describe, identity_of, service_account, spiffe_id, write_pki
from ambientlab.live.lab.plan import BRIDGE, PEER, build_cluster_plan

SESSION = load_capture("lab-2026-11-hbone")
PRODUCTPAGE, REVIEWS = "bookinfo-productpage", "bookinfo-reviews"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    write_pki(folder, [PRODUCTPAGE, REVIEWS])
    return folder


def _files(folder: Path, account: str, ca: Path | None = None) -> tuple[str, str, str]:
    return str(folder / f"{account}.pem"), str(folder / f"{account}.key"), str((ca or folder) / "ca.pem")


def _tunnel(pki: Path, client_files: tuple[str, str, str], authority: str,
            serve: Callable[[ssl.SSLSocket], None]) -> tuple[Exception | None, list[BaseException]]:
    """Run ``serve`` on the server side of a TLS socket pair; return the client's error (or
    None after a 200) and what the server raised."""
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    errors: list[BaseException] = []
    done = threading.Event()  # the client has what it waited for: the server may close

    def server() -> None:
        try:
            with server_context(*_files(pki, REVIEWS)).wrap_socket(b, server_side=True) as tls:
                serve(tls)
                done.wait(5)
        except BaseException as err:
            errors.append(err)
        finally:
            b.close()

    thread = threading.Thread(target=server)
    thread.start()
    err: Exception | None = None
    try:
        with client_context(*client_files).wrap_socket(a) as tls:
            stream = open_stream(tls, authority)
            assert stream.authority == authority
    except (HboneError, ssl.SSLError, OSError) as caught:
        err = caught
    finally:
        done.set()
        a.close()
        thread.join(5)
    return err, errors


def test_connect_over_mutual_tls_carries_identities_both_ways(pki: Path) -> None:
    seen: dict[str, object] = {}

    def serve(tls: ssl.SSLSocket) -> None:
        seen.update(tls_facts(tls), client=peer_identity(tls))
        stream = accept_stream(tls)
        seen["authority"] = stream.authority
        answer(stream, "200")

    err, errors = _tunnel(pki, _files(pki, PRODUCTPAGE), "10.244.1.23:9080", serve)
    assert err is None and not errors
    assert seen == {"tls": "TLSv1.3", "cipher": seen["cipher"], "alpn": "h2", "client": spiffe_id(PRODUCTPAGE),
                    "authority": "10.244.1.23:9080"}


def test_a_refused_connect_names_the_status(pki: Path) -> None:
    def serve(tls: ssl.SSLSocket) -> None:
        answer(accept_stream(tls), "400")

    err, errors = _tunnel(pki, _files(pki, PRODUCTPAGE), "10.244.2.5:9080", serve)
    assert isinstance(err, HboneError) and "CONNECT 10.244.2.5:9080 refused: status 400" in str(err)
    assert not errors


def test_a_certificate_from_another_ca_is_refused_by_the_server(pki: Path, tmp_path: Path) -> None:
    write_pki(tmp_path, [PRODUCTPAGE])  # same names, other keys
    err, errors = _tunnel(pki, _files(tmp_path, PRODUCTPAGE, ca=pki), "10.244.1.23:9080", lambda tls: None)
    assert err is not None
    assert len(errors) == 1 and isinstance(errors[0], ssl.SSLError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(errors[0])


@pytest.mark.parametrize("ending", ["alert", "reset", "eof"])
def test_a_refusal_is_reported_as_a_refusal_whichever_way_it_arrives(pki: Path, tmp_path: Path, ending: str) -> None:
    """TLS 1.3: the server judges the client's certificate after the client's handshake is done,
    so the client learns of it on its first write or read: as an alert, or (when the alert is
    lost to a reset, or never sent) as the end of the connection. Each is a refusal."""
    write_pki(tmp_path, [PRODUCTPAGE])  # same names, another CA: the server refuses this certificate
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def server() -> None:
        conn, _ = listener.accept()
        try:
            if ending == "alert":  # the real server: it sends its alert and closes
                server_context(*_files(pki, REVIEWS)).wrap_socket(conn, server_side=True)
            else:  # a server that accepts the handshake, then drops the connection without an alert
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*_files(pki, REVIEWS)[:2])
                ctx.set_alpn_protocols(["h2"])
                tls = ctx.wrap_socket(conn, server_side=True)
                if ending == "reset":
                    tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                tls.close()
        except BaseException as err:
            errors.append(err)
        finally:
            conn.close()

    thread = threading.Thread(target=server)
    thread.start()
    with client_context(*_files(tmp_path, PRODUCTPAGE, ca=pki)).wrap_socket(
            socket.create_connection(listener.getsockname(), timeout=5)) as tls:
        thread.join(5)  # the server has decided before the client writes: the ordering under test
        with pytest.raises(Refused) as caught:
            open_stream(tls, "10.244.1.23:9080")
    listener.close()
    assert str(caught.value).startswith("refused by the peer before HTTP/2 began")
    if ending == "alert":
        assert caught.value.alert in ("decrypt_error", "unknown_ca", "bad_certificate")
        assert len(errors) == 1 and "CERTIFICATE_VERIFY_FAILED" in str(errors[0])
    else:
        assert caught.value.alert is None and not errors


def test_relay_moves_a_megabyte_each_way_within_http2_flow_control(pki: Path) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: 16 times the initial 64 KiB stream window
    a, b = socket.socketpair()
    app_client, app_near = socket.socketpair()
    far, app_server = socket.socketpair()
    results: dict[str, object] = {}

    def near_side() -> None:
        with client_context(*_files(pki, PRODUCTPAGE)).wrap_socket(a) as tls:
            results["near"] = relay(open_stream(tls, "10.244.1.23:9080"), app_near, idle=5)

    def far_side() -> None:
        with server_context(*_files(pki, REVIEWS)).wrap_socket(b, server_side=True) as tls:
            stream = accept_stream(tls)
            answer(stream, "200")
            results["far"] = relay(stream, far, idle=5)

    def echo_server() -> None:
        got = b""
        while len(got) < len(payload):
            got += app_server.recv(65536)
        app_server.sendall(got[::-1])
        app_server.shutdown(socket.SHUT_WR)

    threads = [threading.Thread(target=f) for f in (near_side, far_side, echo_server)]
    for t in threads:
        t.start()
    app_client.sendall(payload)
    app_client.shutdown(socket.SHUT_WR)
    back = b""
    while chunk := app_client.recv(65536):
        back += chunk
    for t in threads:
        t.join(10)
    for sock in (a, b, app_client, app_near, far, app_server):
        sock.close()
    assert back == payload[::-1]
    assert results["near"] == (len(payload), len(payload)) and results["far"] == (len(payload), len(payload))


def test_certificates_carry_only_a_spiffe_id(pki: Path) -> None:
    leaf = describe((pki / f"{REVIEWS}.pem").read_bytes())
    assert leaf["subject"] == "" and leaf["uri_sans"] == [spiffe_id(REVIEWS)] and leaf["ca"] is False
    assert leaf["issuer"] == "O=cluster.local" and leaf["key"] == "EC secp256r1"
    assert set(leaf["extended_key_usage"]) == {"serverAuth", "clientAuth"}  # type: ignore[arg-type]
    assert describe((pki / "ca.pem").read_bytes())["ca"] is True
    assert identity_of((pki / f"{PRODUCTPAGE}.pem").read_bytes()) == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    assert [service_account(h) for h in ("productpage-v1", "worker-reviews-v1", "reviews-v3")] == \
        [PRODUCTPAGE, REVIEWS, REVIEWS]
    assert not (pki / "ca.key").exists()


def test_cluster_plan_joins_both_nodes_on_one_bridge() -> None:
    plan = build_cluster_plan(load_capture("kind-2022-ambient-worker2"), load_capture("kind-2022-ambient-worker"),
                              "vxlan", lambda h: f"t-{h}")
    assert plan.ztunnels == {"ztunnel": "10.244.2.10", "worker-ztunnel": "10.244.1.19"}
    assert plan.pods["worker-reviews-v1"] == "10.244.1.23" and plan.pods["reviews-v1"] == "10.244.2.7"
    assert set(plan.remote) == {"172.18.0.1", "172.18.0.3", "10.244.0.6"}  # what no lab node owns
    peer = [" ".join(s.argv) for s in plan.steps if s.host == PEER]
    assert peer[:2] == [f"ip link add {BRIDGE} index 10 type bridge", f"ip link set {BRIDGE} up"]
    assert {f"ip link set eth0 master {BRIDGE}", f"ip link set eth1 master {BRIDGE}"} <= set(peer)
    assert "ip route add 10.244.1.0/24 via 172.18.0.4 dev br0" in peer
    assert "ip route add 10.244.2.0/24 via 172.18.0.2 dev br0" in peer
    assert len(peer) == len(set(peer))
    uplinks = [s.argv for s in plan.steps if s.argv[-2:] == ("netns", "t-peer")]
    assert [(a[a.index("peer") + 2], a[a.index("peer") + 4]) for a in uplinks] == [("eth0", "2"), ("eth1", "3")]


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_recorded_hbone_traces_agree_with_the_tracer_hook_by_hook(behaviour: str) -> None:
    traced = recorded_trace(SESSION, f"hbone-trace-{behaviour}")
    conn, output, texts = traced.connection, traced.client_output, traced.texts
    assert output.startswith("hello from worker-reviews-v1 (10.244.1.23:9080); you are 10.244.2.10:")
    assert output.endswith(f"echo: {LINE}")
    prediction = predict_hbone(conn)
    assert prediction.works
    table = compare(prediction.hops, kernel_segments(texts))
    assert table["agree"].all(), table[~table["agree"]]
    assert set(table["host"]) == {"node", "ztunnel", "worker-node", "worker-ztunnel"}
    assert len(table) == {"marks-2022": 84, "no-marks": 68}[behaviour]
    assert traced.comparison().equals(table)


def test_a_recording_lists_its_traced_connections_and_names_them_when_one_is_missing() -> None:
    assert recorded_traces(SESSION) == ["hbone-trace-marks-2022", "hbone-trace-no-marks"]
    with pytest.raises(KeyError, match="hbone-trace-marks-2022, hbone-trace-no-marks"):
        recorded_trace(SESSION, "trace-nosuch")


def test_the_tracer_predicts_a_lost_connection_when_the_far_node_misses_rule_103() -> None:
    conn = HboneConnection("no-marks", "productpage-v1", "10.244.2.3", "worker-reviews-v1", "10.244.1.23", 1, 2, 3)
    broken = predict_hbone(conn, lambda net: remove_ip_rule(net, "worker-node", 103))
    assert not broken.works
    assert broken.ends.loc["4 HBONE SYN", "ends"] == "arrives in pod worker-reviews-v1"  # nothing listens on 15008


def _frames(name: str) -> pd.DataFrame:
    return pd.DataFrame([json.loads(line) for line in SESSION.text(f"session/underlay-{name}.jsonl").splitlines()])


def test_the_recorded_underlay_carries_only_tls_between_the_nodes() -> None:
    frames = _frames("hbone")
    tcp = frames[frames["proto"] == "tcp"]
    assert set(tcp["sport"]) | set(tcp["dport"]) >= {15008} and not ({9080} & (set(tcp["sport"]) | set(tcp["dport"])))
    records = tls_records(frames, 15008)
    assert "not TLS" not in set(records["record"])
    hello = records[records["message"] == "ClientHello"]
    assert list(hello["alpn"]) == ["h2"]
    assert next(iter(records[records["direction"] == "to client"]["message"])) == "ServerHello"
    assert set(records["record"]) == {"handshake", "change_cipher_spec", "application_data"}
    assert plaintext_hits(frames, LINE) == [] and plaintext_hits(frames, "hello from") == []
    clear = _frames("plaintext")
    assert len(plaintext_hits(clear, LINE)) == 2  # the same line without HBONE: out and echoed back
    assert tls_records(clear, 9080)["record"].iloc[0] == "not TLS"


def test_the_recorded_refusals_name_their_reason() -> None:
    cases = {r["case"]: r for r in map(json.loads, SESSION.text("session/hbone-refusals.jsonl").splitlines())}
    ok = cases["a workload of this node"]
    assert ok["client_output"].startswith("hello from worker-reviews-v1")
    assert ok["far_ztunnel"]["source_identity"] == spiffe_id(PRODUCTPAGE)
    assert ok["far_ztunnel"]["onward"].startswith("10.244.2.10:")
    other = cases["a pod on the other node"]
    assert other["client_output"].endswith("status 400")
    assert "is not a workload on ambient-worker" in other["far_ztunnel"]["error"]
    rogue = cases["another CA's certificate"]
    assert rogue["client_output"].startswith("error: HboneError: TLS:")
    assert rogue["far_ztunnel"]["error"] == "TLS: CERTIFICATE_VERIFY_FAILED"


def test_one_log_line_per_tunnelled_connection_on_each_side() -> None:
    for behaviour in BEHAVIOURS:
        for process, direction in (("ztunnel", "outbound"), ("worker-ztunnel", "inbound")):
            events = [json.loads(line) for line in SESSION.text(f"session/{process}-{behaviour}.log").splitlines()]
            tunnels = [e for e in events if e["event"] == "tunnel"]
            assert tunnels and all(e["direction"] == direction for e in tunnels)
            for e in tunnels:
                assert e["source_identity"] == spiffe_id(PRODUCTPAGE)
                assert e["destination_identity"] == spiffe_id(REVIEWS)
                assert e["bytes_up"] == len(LINE) + 1 or e["bytes_up"] == 0
                assert e["bytes_down"] > 0 and e["tls"] == "TLSv1.3" and e["alpn"] == "h2"


def _pcap(frames: list[bytes], linktype: int = 1) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for frame in frames:
        out += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    return out


def _ipv4_tcp(payload: bytes, ethertype: int = 0x0800, proto: int = 6) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, 15008, 7, 0, 5 << 4, 0x18, 1000, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, proto, 0, bytes([10, 244, 2, 10]),
                     bytes([10, 244, 1, 23])) + tcp
    return b"\x00" * 12 + struct.pack("!H", ethertype) + ip


def test_pcap_reader_reads_a_frame_and_rejects_what_it_cannot_read() -> None:
    (rec,) = read_pcap(_pcap([_ipv4_tcp(b"\x17\x03\x03\x00\x01x")]))
    assert rec == {"frame": 1, "src": "10.244.2.10", "dst": "10.244.1.23", "proto": "tcp", "sport": 40000,
                   "dport": 15008, "seq": 7, "flags": "PA", "payload": "1703030001" + b"x".hex(), "length": 6}
    with pytest.raises(PcapError, match="magic"):
        read_pcap(b"\x00" * 24)
    with pytest.raises(PcapError, match="link type 113"):
        read_pcap(_pcap([], linktype=113))
    with pytest.raises(PcapError, match="frame 2: ethertype 0x86dd"):
        read_pcap(_pcap([_ipv4_tcp(b""), _ipv4_tcp(b"", ethertype=0x86DD)]))
    with pytest.raises(PcapError, match="frame 1: IP protocol 1"):
        read_pcap(_pcap([_ipv4_tcp(b"", proto=1)]))
    with pytest.raises(PcapError, match="frame 1 at byte 24: cut short"):
        read_pcap(_pcap([_ipv4_tcp(b"abc")])[:-2])
