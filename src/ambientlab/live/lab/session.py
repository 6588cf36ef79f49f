"""The live-lab session the book shows when it is built without root: two labs (one per
ztunnel stand-in behaviour) built, asked, traced and broken, everything they printed written
into a capture folder of origin ``lab``. Run by ``ambientlab lab record DIR --session``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ambientlab.core.trace.breaks import PIECES
from ambientlab.live.lab.breaks import break_piece, restore
from ambientlab.live.lab.nftrace import trace
from ambientlab.live.lab.plan import PEER
from ambientlab.live.lab.record import lab_meta, record_files, write_capture
from ambientlab.live.lab.runtime import DEFAULT_CAPTURE, Lab, up

# `ip route get` questions the chapter asks the lab's kernel (and the tracer).
ROUTE_QUERIES = {
    "node": [
        "10.244.2.7 from 10.244.2.3 iif vethproductpage mark 0x100",
        "10.244.2.7 from 10.244.2.3 iif vethproductpage",
        "10.244.2.7 from 10.244.2.3 iif vethproductpage mark 0x200",
        "10.244.2.3 from 10.244.2.7 iif vethreviewsv1 mark 0x40",
        "10.96.183.192 from 10.244.2.3 iif vethproductpage mark 0x100",
        "10.244.2.3 from 10.244.2.7 iif veth6cc9a213 mark 0x210",
        "10.244.2.7 from 10.244.1.19 iif eth0",
    ],
    "ztunnel": [
        "10.244.2.7 from 10.244.2.3 iif pistioout mark 0x400",
        "10.244.2.7 from 10.244.2.3 iif pistioout",
        "10.244.2.3 from 10.244.2.7 iif eth0 mark 0x4d3",
        "10.244.2.3 mark 0x401",
        "10.244.1.19 mark 0x402",
    ],
}
TRACES = {"marks-2022": ("productpage-v1", PEER), "no-marks": ("productpage-v1",)}
CLIENTS = ("productpage-v1", PEER)
SERVER = "reviews-v1"


def write(root: Path, path: str, text: str) -> None:
    """Write ``text`` at ``path`` under capture folder ``root`` (folders made as needed)."""
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


def entry(path: str, command: str, host: str, parser: str, note: str | None = None) -> dict[str, Any]:
    """Return the manifest entry (origin ``lab``) of a session file; its sha256 is added on writing."""
    entry = {"path": path, "command": command, "host": host, "origin": "lab", "parser": parser}
    return {**entry, "note": note} if note else entry


def _route_gets(lab: Lab, root: Path) -> list[dict[str, Any]]:
    files = []
    for host, queries in ROUTE_QUERIES.items():
        for i, query in enumerate(queries, 1):
            argv = ["ip", "route", "get", *shlex.split(query)]
            text = lab.run(host, "sh", "-c", shlex.join(argv) + " 2>&1", check=False)
            path = f"session/{host}-route-get-{i}.txt"
            write(root, path, "".join(ln.rstrip() + "\n" for ln in text.splitlines()))
            files.append(entry(path, shlex.join(argv), f"lab {host}", "route-get", "stderr kept (2>&1)"))
    return files


def _traces(lab: Lab, root: Path, behaviour: str) -> list[dict[str, Any]]:
    files = []
    for source in TRACES[behaviour]:
        output, texts, conn = trace(lab, source, SERVER)
        stem = f"session/trace-{behaviour}-{source}"
        for host, text in texts.items():
            write(root, f"{stem}-{host}.txt", text)
            files.append(entry(f"{stem}-{host}.txt", "nft monitor trace", f"lab {host}", "nft-trace",
                                f"during `ambientlab lab trace {source} {SERVER}`, TRACE on TCP 9080 and UDP 6081; "
                                "the readiness marker packets (UDP 9) removed"))
        record = {**conn.__dict__, "source": source, "destination": SERVER, "client_output": output}
        write(root, f"{stem}.jsonl", json.dumps(record, sort_keys=True) + "\n")
        files.append(entry(f"{stem}.jsonl", f"ambientlab lab trace {source} {SERVER}", "lab (client)", "jsonl",
                            "the connection as the tracer needs it, and what the client printed"))
    return files


def _breaks(lab: Lab, root: Path, behaviour: str) -> list[dict[str, Any]]:
    lines = []
    for piece in [None, *PIECES]:
        if piece:
            break_piece(lab, piece)
        for client in CLIENTS:
            result = lab.connect(client, SERVER, timeout=1.5)
            lines.append(json.dumps({"behaviour": behaviour, "piece": piece or "none", "client": client,
                                     "client_address": lab.address(client), "server": SERVER, "result": result},
                                    sort_keys=True))
        restore(lab)
    path = f"session/breaks-{behaviour}.jsonl"
    write(root, path, "\n".join(lines) + "\n")
    return [entry(path, f"ambientlab lab break PIECE; connect from {' and '.join(CLIENTS)} to {SERVER}; "
                   "ambientlab lab restore", "lab (clients)", "jsonl", "client timeout 1.5 s")]


def record_session(root: Path, capture: str = DEFAULT_CAPTURE, tunnel: str | None = None) -> list[str]:
    """Record the book's lab session into capture folder ``root``; return the paths written."""
    if (root / "manifest.yaml").exists():
        raise FileExistsError(f"{root} already holds a capture")
    files: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for behaviour in TRACES:
        lab = up(capture, tunnel, behaviour=behaviour)
        try:
            if not files:
                meta = lab_meta(lab)
                meta["lab"]["ztunnel_standin"] = "both: marks-2022, then no-marks (file names say which)"
                meta["lab"]["build_seconds"] = lab.state["build_seconds"]
                files += record_files(lab, root) + _route_gets(lab, root)
            files += _traces(lab, root, behaviour) + _breaks(lab, root, behaviour)
            write(root, f"session/ztunnel-{behaviour}.log", (lab.folder / "ztunnel.log").read_text())
            files.append(entry(f"session/ztunnel-{behaviour}.log", "python -m ambientlab.live.lab.standin ztunnel "
                                f"--behaviour {behaviour}", "lab ztunnel", "jsonl", "the stand-in's own log"))
        finally:
            lab.down()
    write_capture(root, f"live lab session: {capture} rebuilt in namespaces, traced and broken", meta, files)
    return [f["path"] for f in files]
