"""``ambientlab capture``: record your own node with the commands the book uses, into a capture
folder the chapters, the tracer and the lab can read.

Only read-only commands run on the node (``ip``, ``ipset list``, ``iptables-save``, ``sysctl``,
and ``uname -r`` with the tools' ``-V`` for their versions) and in the cluster (``kubectl get``).
Each command is one exec whose output streams back to this machine: nothing is written on the
node. How the commands reach it:

- ``--kind-node NODE``: ``docker exec NODE CMD`` (a kind node is a container). Creates nothing.
- ``--kubectl-debug NODE``: the one mode that **creates something**: a pod named
  ``ambientlab-capture-NODE`` in namespace ``default``, privileged, with the node's network and
  its root at ``/host`` (what ``kubectl debug node/NODE --profile sysadmin`` makes, under a name
  of ours). Each command runs as ``kubectl exec POD -- chroot /host CMD`` (the node's own
  tools), and the pod is deleted at the end, also when the capture fails.
- ``--lab PREFIX``: ``ip netns exec PREFIX-node CMD`` on a running live lab, read like a node. A
  lab has no cluster: its pods come from its state, and the ``kubectl get`` listings are copied
  from the capture it was built from (their manifest entries say so). Creates nothing.

The ztunnel pod's namespace (the 2022 design) is read with ``kubectl exec POD -- CMD`` (the image
must have the tools); the pods' own namespaces (the in-pod design) are found on the node by their
IP with one ``ip -all netns exec ip -4 -o addr show`` and read with ``ip netns exec NS CMD``.

:class:`Runner` starts the commands in order and keeps the list; ``--dry-run`` runs the same code
with a runner that starts nothing, so it prints the same list: the look-ups, the version probes,
creating and deleting the debug pod. What only a look-up can tell (the ztunnel pod's name, a
pod's namespace) is a word in capitals there (:data:`ZTUNNEL_POD`, ``NETNS-OF-POD``).

A capture is written into a hidden folder beside the target and renamed to it at the end: a
capture that fails leaves no folder.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ambientlab.core.capture import load_capture, write_manifest
from ambientlab.core.parse import parse
from ambientlab.core.redirection import IN_POD_UNKNOWN, capture_rules, classify
from ambientlab.core.trace.demo import short_name
from ambientlab.live.outputs import SYSCTL

COLUMNS = "custom-columns=NAME:.metadata.name,IP:.status.podIP,NODE:.spec.nodeName"
DEBUG_IMAGE = "busybox:1.36"
DEBUG_NAMESPACE = "default"
TABLES = ("main", "local", "100", "101", "102")
# What the node's tools and kernel are (into the manifest, not into files).
VERSIONS = {"kernel": ("uname", "-r"), "iproute2": ("ip", "-V"), "iptables": ("iptables", "-V"),
            "ipset": ("ipset", "-v")}
NETNS_ADDRESSES = ("ip", "-all", "netns", "exec", "ip", "-4", "-o", "addr", "show")
ZTUNNEL_POD = "ZTUNNEL-POD"  # in a dry run: the name the ztunnel look-up will find


@dataclass(frozen=True)
class Command:
    """One read-only command: the capture path it fills, its argv, the parser of its output."""

    path: str
    argv: tuple[str, ...]
    parser: str
    optional: bool = False  # absent devices or tables: an error output is dropped, not recorded


def host_commands(folder: str, *, ipset: bool, tunnels: Sequence[str]) -> list[Command]:
    """Return the book's commands for one network namespace, written under ``folder/``."""
    out = [Command(f"{folder}/ip-addr.txt", ("ip", "addr"), "ip-addr"),
           Command(f"{folder}/ip-rule.txt", ("ip", "rule"), "ip-rule")]
    out += [Command(f"{folder}/ip-route-table-{t}.txt", ("ip", "route", "show", "table", t), "ip-route",
                    optional=t not in ("main", "local")) for t in TABLES]
    out += [Command(f"{folder}/ip-d-link-{d}.txt", ("ip", "-d", "link", "show", d), "ip-link", optional=True)
            for d in tunnels]
    if ipset:
        out.append(Command(f"{folder}/ipset-list.txt", ("ipset", "list"), "ipset", optional=True))
    out += [Command(f"{folder}/iptables-save.txt", ("iptables-save",), "iptables-save"),
            Command(f"{folder}/sysctl-net-ipv4.txt", tuple(SYSCTL), "sysctl")]
    return out


def cluster_commands(node: str) -> list[Command]:
    """Return the ``kubectl get`` commands: nodes, the node's pods, the ztunnel pods."""
    return [Command("cluster/kubectl-get-nodes.txt", ("get", "node"), "kubectl"),
            Command(f"cluster/kubectl-get-pods-{node}.txt", ("get", "pod", "-A", "-o", COLUMNS, "--field-selector",
                                                             f"spec.nodeName={node}"), "kubectl"),
            Command("cluster/kubectl-get-pods-ztunnel.txt", ("get", "pod", "-A", "-l", "app=ztunnel", "-o", COLUMNS),
                    "kubectl")]


def debug_pod_name(node: str) -> str:
    """Return the name of the debug pod ``--kubectl-debug`` creates on ``node``:
    ``ambientlab-capture-NODE`` as a DNS label (lowercase letters, digits and ``-``, 63 at most)."""
    return re.sub(r"[^a-z0-9-]+", "-", f"ambientlab-capture-{node}".lower())[:63].strip("-")


@dataclass
class Target:
    """How to reach a node and the cluster: the argv prefix that runs one command on the node,
    ``kubectl`` (None: no cluster), what must be created first and deleted at the end."""

    node: str
    on_node: list[str]  # + argv
    describe: str
    kubectl: list[str] | None = field(default_factory=lambda: ["kubectl"])
    creates: list[tuple[list[str], str]] = field(default_factory=list)  # (argv, why), run first
    deletes: list[tuple[list[str], str]] = field(default_factory=list)  # run last, also after a failure
    lab: dict[str, Any] | None = None  # a live lab's state: its pods and source capture, instead of a cluster

    def in_ztunnel(self, pod: str) -> list[str]:
        """Return the argv prefix that runs one command in the ztunnel pod ``pod``."""
        if self.lab is not None:
            return ["ip", "netns", "exec", f"{self.lab['prefix']}-ztunnel"]
        return [*(self.kubectl or ["kubectl"]), "exec", "-n", "istio-system", pod, "--"]

    def creation(self) -> str:
        """Return what this target creates and deletes, in a sentence (``creates nothing`` …)."""
        if not self.creates:
            return "It creates nothing, anywhere."
        return (f"It CREATES the pod {debug_pod_name(self.node)} (namespace {DEBUG_NAMESPACE}, privileged, on node "
                f"{self.node}) and deletes it at the end, also when the capture fails.")

    @classmethod
    def kind(cls, node: str) -> Target:
        """Return the target of kind node ``node`` (a docker container)."""
        return cls(node, ["docker", "exec", node], f"docker exec {node}")

    @classmethod
    def debug(cls, node: str, image: str = DEBUG_IMAGE) -> Target:
        """Return the target of node ``node`` reached through a debug pod of ours (see the module)."""
        name = debug_pod_name(node)
        pod = {"apiVersion": "v1", "spec": {
            "nodeName": node, "hostNetwork": True, "hostPID": True, "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "capture", "image": image, "command": ["sleep", "3600"],
                            "securityContext": {"privileged": True},
                            "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}}
        kubectl = ["kubectl", "-n", DEBUG_NAMESPACE]
        return cls(node, [*kubectl, "exec", name, "--", "chroot", "/host"], f"kubectl exec {name} (chroot /host)",
                   creates=[([*kubectl, "run", name, "--image", image, "--restart=Never", "--overrides",
                              json.dumps(pod, separators=(",", ":"))], f"CREATES the debug pod {name}"),
                            ([*kubectl, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s"],
                             f"waits until {name} runs")],
                   deletes=[([*kubectl, "delete", "pod", name, "--ignore-not-found", "--now"],
                             f"DELETES the debug pod {name}")])


def lab_target(prefix: str) -> Target:
    """Return a running live lab's node as a target, read with ``ip netns exec``: the lab
    standing in for a real node, without a cluster (see the module)."""
    from ambientlab.live.lab.runtime import open_lab

    lab = open_lab(prefix)
    source = load_capture(lab.state["capture"])
    nodes = [p.removeprefix("cluster/kubectl-get-pods-").removesuffix(".txt") for p in source.files.index
             if p.startswith("cluster/kubectl-get-pods-") and p != "cluster/kubectl-get-pods-ztunnel.txt"]
    if len(nodes) != 1:
        raise RuntimeError(f"{source.name}: cannot tell the lab's node from its pod listings ({nodes})")
    return Target(nodes[0], ["ip", "netns", "exec", f"{prefix}-node"], f"ip netns exec {prefix}-node", kubectl=None,
                  lab=lab.state)


class Runner:
    """Starts the capture's commands one after the other and keeps them in :attr:`lines`
    (``COMMAND  # why``). A ``dry`` runner starts nothing and answers every command with an
    empty output and exit code 0."""

    def __init__(self, dry: bool = False) -> None:
        self.dry = dry
        self.lines: list[str] = []

    def __call__(self, argv: Sequence[str], why: str) -> tuple[int, str, str]:
        """Run ``argv`` (a dry runner only lists it); return (exit code, output, error output)."""
        self.lines.append(f"{shlex.join(argv)}  # {why}")
        if self.dry:
            return 0, "", ""
        try:
            done = subprocess.run(list(argv), capture_output=True)
        except FileNotFoundError:
            raise RuntimeError(f"{argv[0]} not found ({why}: `{shlex.join(argv)}`)") from None
        return done.returncode, done.stdout.decode(), done.stderr.decode(errors="replace")

    def output(self, argv: Sequence[str], why: str) -> str:
        """Run ``argv`` and return its output; raise ``RuntimeError`` if it fails."""
        rc, out, err = self(argv, why)
        if rc != 0:
            raise RuntimeError(f"`{shlex.join(argv)}` ({why}) failed ({rc}): {err.strip()[:300]}")
        return out


def _listing(text: str, source: str) -> list[tuple[str, str, str]]:
    """Return [(name, IP, node)] of a ``kubectl get pod -o COLUMNS`` output."""
    frame = parse("kubectl", text, source)
    return list(zip(frame["NAME"].astype(str), frame["IP"].astype(str), frame["NODE"].astype(str), strict=True))


def _netns_of(text: str) -> dict[str, str]:
    """Return {IPv4 address: network namespace} from ``ip -all netns exec ip -4 -o addr show``."""
    out: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("netns: "):
            current = line.removeprefix("netns: ").strip()
        found = re.search(r"\sinet (\d+\.\d+\.\d+\.\d+)/", line)
        if found and current:
            out.setdefault(found.group(1), current)
    return out


def run_capture(target: Target, root: Path, runner: Runner, *, with_ztunnel: bool = False,
                pods: Sequence[str] = ()) -> list[str]:
    """Capture ``target`` into the folder ``root``: the node's commands, the ztunnel pod's with
    ``with_ztunnel`` (2022 design), and the own namespaces of ``pods`` (names, short or full; the
    in-pod design); the manifest has origin ``recorded`` (copied listings: the lab's source's),
    the date, the tools' versions and Istio's version if found. Return the paths written (a dry
    ``runner`` writes nothing and returns [])."""
    if not runner.dry:
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise FileExistsError(f"{root} already holds a capture" if (root / "manifest.yaml").exists() else
                                  f"{root} exists and is not an empty folder")
        if not root.parent.is_dir():
            raise FileNotFoundError(f"no folder {root.parent} to write the capture {root.name} into")
    work = None if runner.dry else Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        try:
            for argv, why in target.creates:
                runner.output(argv, why)
            files, meta = _capture(target, work, runner, with_ztunnel, list(pods))
        finally:
            for argv, why in target.deletes:
                rc, _, err = runner(argv, why)
                if rc != 0:
                    print(f"ambientlab capture: `{shlex.join(argv)}` failed ({rc}): {err.strip()[:300]}",
                          file=sys.stderr)
        if work is None:
            return []
        write_manifest(work, "Recorded by `ambientlab capture` (origin `recorded`). Checked by `ambientlab data`.",
                       {"capture": root.name, **meta}, files)
        work.chmod(0o755)  # mkdtemp made it private
        os.rename(work, root)  # an empty folder at root is replaced
    except BaseException:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        raise
    return [f["path"] for f in files]


def design_found(root: Path) -> str:
    """Return what ``ambientlab capture`` tells the reader after writing the capture at ``root``:
    which design of redirection its iptables-save outputs show (2022 node-level, 1.22 in-pod
    TPROXY, 1.24+ in-pod REDIRECT: :func:`~ambientlab.core.redirection.classify`) and the rule
    that shows it; when only the node was read and it is in-pod, how to find out which."""
    found = classify(capture_rules(load_capture(root)))
    text = f"design: {found.sentence()}"
    if found.design == IN_POD_UNKNOWN:
        text += " (capture again with --pods NAME, a meshed pod: its own rules tell TPROXY from REDIRECT)"
    return text


def _capture(target: Target, work: Path | None, runner: Runner, with_ztunnel: bool,
             wanted: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the commands (see :func:`run_capture`); return the manifest's file entries and meta."""
    files: list[dict[str, Any]] = []
    now = datetime.datetime.now(datetime.UTC)

    def keep(cmd: Command, rc: int, out: str, err: str, command: str, host: str, **entry: str) -> None:
        if runner.dry or (rc != 0 and cmd.optional):
            return
        if rc != 0:
            raise RuntimeError(f"{command} (on {host}) failed ({rc}): {err.strip()[:300]}")
        assert work is not None
        (work / cmd.path).parent.mkdir(parents=True, exist_ok=True)
        (work / cmd.path).write_text(out)
        files.append({"path": cmd.path, "command": command, "host": host, "origin": "recorded",
                      "source": "this-run", "parser": cmd.parser,
                      **({"note": f"stderr: {err.strip()}"} if err.strip() else {}), **entry})

    sources = {"this-run": f"ambientlab capture, {target.describe}, {now.strftime('%Y-%m-%d %H:%M UTC')}"}
    on_node: list[tuple[str, str]]  # (name, IP) of the node's pods
    if target.lab is None:
        kubectl = target.kubectl or ["kubectl"]
        texts = {}
        also = {f"cluster/kubectl-get-pods-{target.node}.txt": " (and the look-up of the node's pods)",
                "cluster/kubectl-get-pods-ztunnel.txt": " (and the look-up of the node's ztunnel pod)"}
        for cmd in cluster_commands(target.node):
            texts[cmd.path] = runner.output([*kubectl, *cmd.argv], f"-> {cmd.path}{also.get(cmd.path, '')}")
            keep(cmd, 0, texts[cmd.path], "", f"kubectl {shlex.join(cmd.argv)}", "workstation (kubectl)")
        rc, image, _ = runner([*kubectl, "get", "deploy", "-n", "istio-system", "istiod", "-o",
                               "jsonpath={.spec.template.spec.containers[0].image}"], "look-up: Istio's version (istiod's image)")
        istio = image.strip().rsplit(":", 1)[1] if rc == 0 and ":" in image else None
        cluster = f"Istio {istio}" if istio else "Istio version not found"
        if runner.dry:
            on_node, ztunnel = [(w, f"IP-OF-{w}") for w in wanted], ZTUNNEL_POD
        else:
            on_node = [(n, ip) for n, ip, _ in _listing(texts[f"cluster/kubectl-get-pods-{target.node}.txt"],
                                                         f"kubectl get pod on {target.node}")]
            found = [n for n, _, node in _listing(texts["cluster/kubectl-get-pods-ztunnel.txt"], "kubectl get pod ztunnel")
                     if node == target.node]
            if with_ztunnel and len(found) != 1:
                raise RuntimeError(f"{len(found)} ztunnel pods on {target.node} (want 1)")
            ztunnel = found[0] if found else ZTUNNEL_POD
    else:  # a live lab: no cluster
        source = load_capture(target.lab["capture"])
        cluster = f"live lab {target.lab['prefix']} built from {source.name} (no cluster)"
        on_node, ztunnel = sorted(target.lab["pods"].items()), "ztunnel"
        for path in source.files.index:
            if path.startswith("cluster/") and work is not None:
                (work / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source.root / path, work / path)
                entry = {k: v for k, v in source.entry(path).items() if k in ("command", "host", "origin", "parser",
                                                                              "options", "source", "basis")}
                files.append({"path": path, **entry, "note": f"copied from capture {source.name}, which the lab was "
                              "built from: a live lab has no cluster to ask"})
        sources.update({k: f"{v} (through capture {source.name})" for k, v in source.manifest.get("sources", {}).items()})

    pods = []
    for want in wanted:
        found = [(short_name(n), ip) for n, ip in on_node if n == want or short_name(n) == want]
        if len(found) != 1:
            raise ValueError(f"--pods {want}: {len(found)} pods on {target.node} match (want 1)")
        pods.append(found[0])
    if pods and target.lab is None:
        text = runner.output([*target.on_node, *NETNS_ADDRESSES],
                             "look-up: the network namespace on the node that has each pod's IP")
        netns = {ip: f"NETNS-OF-{name}" for name, ip in pods} if runner.dry else _netns_of(text)
    else:
        netns = {ip: f"{target.lab['prefix']}-{name}" for name, ip in pods} if target.lab else {}

    for cmd in host_commands("node", ipset=True, tunnels=("istioin", "istioout")):
        keep(cmd, *runner([*target.on_node, *cmd.argv], f"-> {cmd.path}"),
             f"{target.describe}: {shlex.join(cmd.argv)}", "node")
    tools = {}
    for key, argv in VERSIONS.items():
        rc, out, err = runner([*target.on_node, *argv], f"the version of {key}, into the manifest")
        tools[key] = (out or err).strip().splitlines()[0] if rc == 0 and (out or err).strip() else "not found"
    if with_ztunnel:
        prefix = target.in_ztunnel(ztunnel)
        host = f"ztunnel pod {ztunnel}" if target.lab is None else f"lab ztunnel ({shlex.join(prefix)})"
        for cmd in host_commands("ztunnel", ipset=False, tunnels=("pistioin", "pistioout")):
            keep(cmd, *runner([*prefix, *cmd.argv], f"-> {cmd.path}"), f"{shlex.join(prefix)} {shlex.join(cmd.argv)}",
                 host)
    for name, ip in pods:
        if ip not in netns:
            raise RuntimeError(f"no network namespace on {target.node} has {name}'s address {ip}")
        wrap = ["ip", "netns", "exec", netns[ip]]
        for cmd in host_commands(name, ipset=False, tunnels=()):
            keep(cmd, *runner([*target.on_node, *wrap, *cmd.argv], f"-> {cmd.path}"),
                 f"{target.describe}: {shlex.join([*wrap, *cmd.argv])}", f"pod {name} ({ip})")
    meta = {"title": f"node {target.node}, recorded by ambientlab capture", "cluster": cluster, "sources": sources,
            "recorded": now.date().isoformat(), "node_tools": tools}
    return files, meta


def dry_run(target: Target, out: str, *, with_ztunnel: bool = False, pods: Sequence[str] = ()) -> list[str]:
    """Return what ``ambientlab capture --dry-run`` prints: a few comment lines (what is
    created, what the capitalised words stand for), then every command in the order the real run
    starts them (:func:`run_capture` with a dry :class:`Runner`)."""
    runner = Runner(dry=True)
    run_capture(target, Path(out), runner, with_ztunnel=with_ztunnel, pods=pods)
    words = ([ZTUNNEL_POD] if with_ztunnel and target.lab is None else []) + \
        ([f"NETNS-OF-{p}" for p in pods] if target.lab is None else [])
    return [f"# ambientlab capture {out}: the {len(runner.lines)} commands it runs, in this order (none is run now).",
            "# Nothing is written on the node: each command's output streams back. " + target.creation(),
            *([f"# Words in capitals are found by the look-ups before them: {', '.join(words)}."] if words else []),
            *runner.lines]

