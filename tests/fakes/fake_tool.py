"""A stand-in for ip, ipset, iptables-save, sysctl, docker and kubectl that replays a
capture's recorded outputs (tests of `ambientlab capture`, no cluster needed).

FAKE_CAPTURE: the capture folder; FAKE_HOST: the folder the node tools read (node, ztunnel).
The tests write one small executable per tool name that calls :func:`main` with that name.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

VERSIONS = {("ip", "-V"): "ip utility, iproute2-5.19.0", ("iptables", "-V"): "iptables v1.8.7 (nf_tables)",
            ("ipset", "-v"): "ipset v7.15, protocol version: 7"}  # made up, to tell them from this machine's


def _replay(folder: str, argv: list[str]) -> int:
    root = Path(os.environ["FAKE_CAPTURE"])
    if tuple(argv) in VERSIONS:
        print(VERSIONS[tuple(argv)])
        return 0
    wanted = shlex.join(argv)
    for entry in yaml.load((root / "manifest.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["files"]:
        command = entry["command"]
        if entry["path"].startswith(f"{folder}/") and (command == wanted or command.endswith(" " + wanted)):
            sys.stdout.write((root / entry["path"]).read_text())
            return 0
    if argv[:3] == ["ip", "-d", "link"]:
        print(f'Device "{argv[-1]}" does not exist.', file=sys.stderr)
        return 1
    if argv[:4] == ["ip", "route", "show", "table"]:
        return 0  # an empty table prints nothing
    print(f"fake {argv[0]}: no recorded output for {wanted!r} in {folder}/", file=sys.stderr)
    return 2


def _shell(script: str, host: str) -> int:
    env = {**os.environ, "FAKE_HOST": host}
    return subprocess.run(["sh", "-c", script], env=env).returncode


def _with_header(text: str) -> str:
    """Return a recorded headerless NAME/IP/NODE listing with kubectl's header, aligned on it."""
    first = text.splitlines()[0]
    ip_at = first.index(first.split()[1], len(first.split()[0]))
    node_at = first.index(first.split()[2], ip_at + len(first.split()[1]))
    return "NAME".ljust(ip_at) + "IP".ljust(node_at - ip_at) + "NODE\n" + text


def _kubectl(argv: list[str]) -> int:
    root = Path(os.environ["FAKE_CAPTURE"])
    if argv[:2] == ["get", "node"]:
        sys.stdout.write((root / "cluster/kubectl-get-nodes.txt").read_text())
    elif argv[:2] == ["get", "pod"] and "app=ztunnel" in argv:
        sys.stdout.write(_with_header((root / "cluster/kubectl-get-pods-ztunnel.txt").read_text()))
    elif argv[:2] == ["get", "pod"]:
        node = next(a.split("=", 1)[1] for a in argv if a.startswith("spec.nodeName="))
        sys.stdout.write(_with_header((root / f"cluster/kubectl-get-pods-{node}.txt").read_text()))
    elif argv[:2] == ["get", "deploy"]:
        print("docker.io/istio/pilot:0.0.0-ambient.191fe680b52c1754ee72a06b3e0d3f9d116f2e82", end="")
    elif argv[0] == "exec":
        return _shell(argv[-1], "ztunnel")
    else:
        print(f"fake kubectl: {argv} is not replayed", file=sys.stderr)
        return 2
    return 0


def main(name: str) -> int:
    """Play tool ``name`` with this process's arguments; return its exit code."""
    argv = [name, *sys.argv[1:]]
    if name == "docker":
        return _shell(argv[-1], "node") if argv[1] == "exec" else 2
    if name == "kubectl":
        return _kubectl(argv[1:])
    return _replay(os.environ.get("FAKE_HOST", "node"), argv)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[0]).name))
