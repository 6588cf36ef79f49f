"""A stand-in for docker, kubectl and ip that replays a capture's recorded outputs (tests of
`ambientlab capture`, no cluster needed).

FAKE_CAPTURE: the capture folder. A command on the node (``docker exec NODE CMD``, ``kubectl exec
POD -- chroot /host CMD`` in the debug pod, ``ip netns exec LAB-node CMD`` on a lab) replays the
node's recorded output of CMD, one in the ztunnel pod the ztunnel's, one in ``ip netns exec
cni-POD`` (or ``LAB-POD``) that pod's. FAKE_LOG: a file that gets one line per call, the command
as started (``shlex.join``). FAKE_KUBECTL=refused: kubectl answers as when its cluster is not
reachable. FAKE_FAIL: a command (as ``shlex.join`` writes it) that fails wherever it runs. The
tests write one small executable per tool name that calls :func:`main` with that
name.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

VERSIONS = {("ip", "-V"): "ip utility, iproute2-5.19.0", ("iptables", "-V"): "iptables v1.8.7 (nf_tables)",
            ("ipset", "-v"): "ipset v7.15, protocol version: 7",
            ("uname", "-r"): "5.15.0-fake"}  # made up, to tell them from this machine's
NETNS_ADDRESSES = ["ip", "-all", "netns", "exec", "ip", "-4", "-o", "addr", "show"]
REFUSED = "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"


def _root() -> Path:
    return Path(os.environ["FAKE_CAPTURE"])


def _entries() -> list[list[str]]:
    """Return [path, command] of the capture's manifest entries. The fakes run without site
    (a call is a process: importing yaml took most of one), so the first call reads the YAML and
    leaves the entries as JSON beside FAKE_LOG for the others."""
    cache = Path(os.environ.get("FAKE_LOG", "")).parent / f"entries-{_root().name}.json"
    if os.environ.get("FAKE_LOG") and cache.exists():
        return json.loads(cache.read_text())
    sys.path.append(os.environ["FAKE_SITE"])
    import yaml

    manifest = yaml.load((_root() / "manifest.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    entries = [[entry["path"], entry["command"]] for entry in manifest["files"]]
    if os.environ.get("FAKE_LOG"):
        cache.with_suffix(".new").write_text(json.dumps(entries))
        cache.with_suffix(".new").replace(cache)
    return entries


def _replay(folder: str, argv: list[str]) -> int:
    if shlex.join(argv) == os.environ.get("FAKE_FAIL"):
        print(f"fake {argv[0]}: failing as FAKE_FAIL asks", file=sys.stderr)
        return 1
    if tuple(argv) in VERSIONS:
        print(VERSIONS[tuple(argv)])
        return 0
    wanted = shlex.join(argv)
    for path, command in _entries():
        if path.startswith(f"{folder}/") and (command == wanted or command.endswith(" " + wanted)):
            sys.stdout.write((_root() / path).read_text())
            return 0
    if argv[:3] == ["ip", "-d", "link"]:
        print(f'Device "{argv[-1]}" does not exist.', file=sys.stderr)
        return 1
    if argv[:4] == ["ip", "route", "show", "table"]:
        return 0  # an empty table prints nothing
    print(f"fake {argv[0]}: no recorded output for {wanted!r} in {folder}/", file=sys.stderr)
    return 2


def _pods() -> dict[str, str]:
    """Return {pod folder: IP} of the capture's pods that have a folder of their own (in-pod)."""
    out = {}
    for listing in (_root() / "cluster").glob("kubectl-get-pods-*.txt"):
        for line in listing.read_text().splitlines():
            name, ip = line.split()[:2]
            folder = name.rsplit("-", 2)[0]
            if (_root() / folder / "ip-addr.txt").exists():
                out[folder] = ip
    return out


def _on_node(argv: list[str]) -> int:
    """Play a command run on the node (``ip netns exec NS`` included)."""
    if argv == NETNS_ADDRESSES:
        for folder, ip in sorted(_pods().items()):
            print(f"\nnetns: cni-{folder}\n1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"
                  f"3: eth0    inet {ip}/24 brd 10.244.2.255 scope global eth0\\       valid_lft forever")
        return 0
    if argv[:3] == ["ip", "netns", "exec"]:
        namespace, rest = argv[3], argv[4:]
        if rest[:3] == ["ip", "netns", "exec"]:  # a lab's pod, entered from its node
            return _on_node(rest)
        return _replay(namespace[4:] if namespace.startswith("cni-") else namespace.split("-", 1)[1], rest)
    return _replay("node", argv)


def _with_header(text: str) -> str:
    """Return a recorded headerless NAME/IP/NODE listing with kubectl's header, aligned on it."""
    first = text.splitlines()[0]
    ip_at = first.index(first.split()[1], len(first.split()[0]))
    node_at = first.index(first.split()[2], ip_at + len(first.split()[1]))
    return "NAME".ljust(ip_at) + "IP".ljust(node_at - ip_at) + "NODE\n" + text


def _kubectl(argv: list[str]) -> int:
    if os.environ.get("FAKE_KUBECTL") == "refused":
        print(REFUSED, file=sys.stderr)
        return 1
    if argv[:1] == ["-n"]:
        argv = argv[2:]
    if argv[:2] == ["get", "node"]:
        sys.stdout.write((_root() / "cluster/kubectl-get-nodes.txt").read_text())
    elif argv[:2] == ["get", "pod"] and "app=ztunnel" in argv:
        sys.stdout.write(_with_header((_root() / "cluster/kubectl-get-pods-ztunnel.txt").read_text()))
    elif argv[:2] == ["get", "pod"]:
        node = next(a.split("=", 1)[1] for a in argv if a.startswith("spec.nodeName="))
        sys.stdout.write(_with_header((_root() / f"cluster/kubectl-get-pods-{node}.txt").read_text()))
    elif argv[:2] == ["get", "deploy"]:
        print("docker.io/istio/pilot:0.0.0-ambient.191fe680b52c1754ee72a06b3e0d3f9d116f2e82", end="")
    elif argv[0] == "run":
        print(f"pod/{argv[1]} created")
    elif argv[0] == "wait":
        print(f"{argv[-2]} condition met")
    elif argv[0] == "delete":
        print(f'pod "{argv[2]}" deleted')
    elif argv[0] == "exec":
        command = argv[argv.index("--") + 1:]
        if command[:2] == ["chroot", "/host"]:  # the debug pod: the node's own tools
            return _on_node(command[2:])
        return _replay("ztunnel", command)
    else:
        print(f"fake kubectl: {argv} is not replayed", file=sys.stderr)
        return 2
    return 0


def main(name: str) -> int:
    """Play tool ``name`` with this process's arguments; return its exit code."""
    argv = [name, *sys.argv[1:]]
    if os.environ.get("FAKE_LOG"):
        with open(os.environ["FAKE_LOG"], "a") as log:
            log.write(shlex.join(argv) + "\n")
    if name == "docker":
        return _on_node(argv[3:]) if argv[1] == "exec" else 2
    if name == "kubectl":
        return _kubectl(argv[1:])
    return _on_node(argv)  # ip on a live lab's machine: `ip netns exec LAB-HOST CMD`


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[0]).name))
