"""The two-node lab session the HBONE chapter shows when the book is built without root: for
each ztunnel stand-in behaviour, a two-node lab built, one connection productpage-v1 ->
worker-reviews-v1 traced in both nodes and both ztunnels, the ztunnels' logs; with the
Sept 2022 behaviour also the underlay captured by tcpdump (HBONE, and a plaintext connection
for contrast), the refusals, and the certificates. Run by ``ambientlab lab record DIR
--hbone-session``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ambientlab.core.parse.wire import read_pcap
from ambientlab.live.lab.nftrace import trace_hbone
from ambientlab.live.lab.pki import describe, write_pki
from ambientlab.live.lab.plan import PEER, SECOND
from ambientlab.live.lab.record import lab_meta, write_capture
from ambientlab.live.lab.runtime import Lab, up
from ambientlab.live.lab.session import entry, write
from ambientlab.live.lab.wire import sniff

CLIENT, SERVER = "productpage-v1", f"{SECOND}reviews-v1"
LINE = "GET /reviews/0 (a line the underlay must not show)"
BEHAVIOURS = ("marks-2022", "no-marks")
TRACED = ("node", "ztunnel", f"{SECOND}node", f"{SECOND}ztunnel")


def _jsonl(root: Path, path: str, records: list[dict[str, Any]]) -> None:
    write(root, path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def _trace(lab: Lab, root: Path, behaviour: str) -> list[dict[str, Any]]:
    output, texts, conn = trace_hbone(lab, CLIENT, SERVER, send=LINE)
    stem = f"session/hbone-trace-{behaviour}"
    files = []
    for host, text in texts.items():
        write(root, f"{stem}-{host}.txt", text)
        files.append(entry(f"{stem}-{host}.txt", "nft monitor trace", f"lab {host}", "nft-trace",
                            f"during `ambientlab lab trace {CLIENT} {SERVER}`, TRACE on TCP 9080 and 15008 and "
                            "UDP 6081; the readiness marker packets (UDP 9) removed"))
    _jsonl(root, f"{stem}.jsonl", [{**conn.__dict__, "client_output": output}])
    files.append(entry(f"{stem}.jsonl", f"ambientlab lab trace {CLIENT} {SERVER}", "lab (client)", "jsonl",
                        "the connection as the tracer needs it (ports from both ztunnels' logs), and what the "
                        "client printed"))
    return files


def _logs(lab: Lab, root: Path, behaviour: str) -> list[dict[str, Any]]:
    files = []
    for process in ("ztunnel", f"{SECOND}ztunnel"):
        path = f"session/{process}-{behaviour}.log"
        write(root, path, (lab.folder / f"{process}.log").read_text())
        files.append(entry(path, f"python -m ambientlab.live.lab.standin ztunnel --behaviour {behaviour} --hbone "
                            f"{process}.hbone.json", f"lab {process}", "jsonl", "the stand-in's own log"))
    return files


def _underlay(lab: Lab, root: Path) -> list[dict[str, Any]]:
    files = []
    for name, client in (("hbone", CLIENT), ("plaintext", PEER)):
        output, pcap = sniff(lab, lambda c=client: lab.connect(c, SERVER, send=LINE))  # type: ignore[misc]
        path = f"session/underlay-{name}.jsonl"
        _jsonl(root, path, [{**frame, "client": client, "client_output": output} for frame in read_pcap(pcap)])
        files.append(entry(path, f"tcpdump -i eth1 --immediate-mode -U -n -s 0 -w - 'tcp or udp' (in {PEER}) during "
                            f"`ambientlab lab connect {client} {SERVER} --send ...`", f"lab {PEER}", "jsonl",
                            "one record per frame, read from the pcap by ambientlab.core.parse.wire.read_pcap; "
                            "payload in hex"))
    return files


def _refusals(lab: Lab, root: Path) -> list[dict[str, Any]]:
    untrusted = lab.folder / "untrusted-pki"
    write_pki(untrusted, ["bookinfo-productpage"])
    cases = [("a workload of this node", "10.244.1.23:9080", None),
             ("a pod on the other node", "10.244.2.5:9080", None),
             ("another CA's certificate", "10.244.1.23:9080", untrusted)]
    records = []
    far = f"{SECOND}ztunnel"
    for case, authority, pki in cases:
        before = len(lab.events(far))
        result = lab.hbone("ztunnel", SERVER, authority, "bookinfo-productpage", pki)
        logged = [e for e in lab.events(far)[before:] if e.get("listener") == 15008]
        records.append({"case": case, "authority": authority, "client_output": result,
                        "far_ztunnel": logged[-1] if logged else None})
    _jsonl(root, "session/hbone-refusals.jsonl", records)
    return [entry("session/hbone-refusals.jsonl", f"ambientlab lab hbone {SERVER} AUTHORITY [--untrusted]",
                   "lab ztunnel (client), worker-ztunnel (log)", "jsonl",
                   "what the bare HBONE client printed, and the far ztunnel's log line for it")]


def _certificates(lab: Lab, root: Path) -> list[dict[str, Any]]:
    pki = lab.folder / "pki"
    records = [{"file": f"{name}.pem", **describe((pki / f"{name}.pem").read_bytes())}
               for name in ("ca", "bookinfo-productpage", "bookinfo-reviews")]
    _jsonl(root, "session/certificates.jsonl", records)
    return [entry("session/certificates.jsonl", "ambientlab.live.lab.pki.describe(PEM) of the lab CA and two workload "
                   "certificates", "lab (state folder pki/)", "jsonl", "the PEM itself is kept in each record; "
                   "private keys are not recorded")]


def record_hbone_session(root: Path, tunnel: str | None = None) -> list[str]:
    """Record the HBONE chapter's two-node session into capture folder ``root``; return the
    paths written."""
    if (root / "manifest.yaml").exists():
        raise FileExistsError(f"{root} already holds a capture")
    files: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for behaviour in BEHAVIOURS:
        lab = up(tunnel=tunnel, behaviour=behaviour, nodes=2)
        try:
            if not meta:
                meta = lab_meta(lab)
                meta["lab"]["second_node"] = lab.state["second_capture"]
                meta["lab"]["ztunnel_standin"] = "both, with HBONE: marks-2022, then no-marks (file names say which)"
                meta["lab"]["build_seconds"] = lab.state["build_seconds"]
            files += _trace(lab, root, behaviour)
            if behaviour == "marks-2022":
                files += _underlay(lab, root) + _refusals(lab, root) + _certificates(lab, root)
            files += _logs(lab, root, behaviour)
        finally:
            lab.down()
    write_capture(root, "live lab session: two nodes and HBONE between their ztunnels", meta, files)
    return [f["path"] for f in files]
