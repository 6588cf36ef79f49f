"""The in-pod lab session chapter 15 shows when the book is built without root: an in-pod lab
built from ``inpod-1.22-ambient-worker2``, its own outputs under the capture's file names,
three connections, and the stand-in ztunnels' logs. Run by ``ambientlab lab record DIR
--inpod-session``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ambientlab.live.lab.plan import PEER
from ambientlab.live.lab.record import lab_meta, record_files, write_capture
from ambientlab.live.lab.runtime import up
from ambientlab.live.lab.session import entry, write

CONNECTIONS = (("productpage-v1", "reviews-v1"), ("ratings-v1", "reviews-v1"), (PEER, "reviews-v1"))


def record_inpod_session(root: Path) -> list[str]:
    """Record the in-pod lab session into capture folder ``root``; return the paths written."""
    if (root / "manifest.yaml").exists():
        raise FileExistsError(f"{root} already holds a capture")
    lab = up(design="inpod")
    try:
        meta = lab_meta(lab)
        meta["lab"]["design"] = "inpod"
        meta["lab"]["build_seconds"] = lab.state["build_seconds"]
        files: list[dict[str, Any]] = record_files(lab, root)
        lines = []
        for client, server in CONNECTIONS:
            result = lab.connect(client, server)
            lines.append(json.dumps({"client": client, "client_address": lab.address(client), "server": server,
                                     "result": result}, sort_keys=True))
        write(root, "session/connections.jsonl", "\n".join(lines) + "\n")
        files.append(entry("session/connections.jsonl", "ambientlab lab connect CLIENT SERVER", "lab (clients)",
                            "jsonl", "one line per connection: who, to whom, what the client printed"))
        for pod in lab.state["inpod"]:
            path = f"session/ztunnel-{pod}.log"
            write(root, path, (lab.folder / f"ztunnel-{pod}.log").read_text())
            files.append(entry(path, "python -m ambientlab.live.lab.standin ztunnel --behaviour inpod",
                                f"lab {pod} (the stand-in inside the pod's namespace)", "jsonl",
                                "the stand-in's own log"))
    finally:
        lab.down()
    write_capture(root, "live lab session: the in-pod design (Istio 1.22 rules in the pods' namespaces)", meta, files)
    return [f["path"] for f in files]
