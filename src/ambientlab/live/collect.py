"""``ambientlab capture``: record your own node with the commands the book uses, into a capture
folder the chapters, the tracer and the lab can read.

Only read-only commands run on the node (``ip``, ``ipset list``, ``iptables-save``, ``sysctl``)
and in the cluster (``kubectl get``). They run as one shell script per host, which frames each
output with its exit code and byte counts, so that nothing is lost or cut:

- ``--kind-node NODE``: ``docker exec NODE sh -c SCRIPT`` (a kind node is a container);
- ``--kubectl-debug NODE``: ``kubectl debug node/NODE`` starts one debug pod with the node's
  network namespace and its root at ``/host``; the script runs there under ``chroot /host``
  (the node's own tools). The debug pod stays: the command prints how to delete it.

The ztunnel pod's namespace (the 2022 design) is read with ``kubectl exec`` where its image has
a shell and the tools; the pods' own namespaces (the in-pod design) are found on the node by
their IP (``ip netns``) and read with ``ip netns exec``.
"""

from __future__ import annotations

import datetime
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ambientlab.core.capture import write_manifest
from ambientlab.core.parse import parse
from ambientlab.live.outputs import SYSCTL

COLUMNS = "custom-columns=NAME:.metadata.name,IP:.status.podIP,NODE:.spec.nodeName"
DEBUG_IMAGE = "busybox:1.36"
TABLES = ("main", "local", "100", "101", "102")
MARK = "@@ambientlab"
# What the node's tools and kernel are (into the manifest, not into files).
VERSIONS = {"kernel": ("uname", "-r"), "iproute2": ("ip", "-V"), "iptables": ("iptables", "-V"),
            "ipset": ("ipset", "-v")}


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


def script(commands: Sequence[Command], netns: str | None = None) -> str:
    """Return the POSIX shell script that runs ``commands`` (inside network namespace ``netns``
    of the host, if given) and frames each output: ``@@ambientlab PATH RC OUTLEN ERRLEN`` then
    the output's bytes, then the error output's bytes."""
    lines = ["t=$(mktemp -d) || exit 1"]
    wrap = f"ip netns exec {shlex.quote(netns)} " if netns else ""
    for cmd in commands:
        lines.append(f"{wrap}{shlex.join(cmd.argv)} >\"$t/o\" 2>\"$t/e\"; rc=$?")
        lines.append(f"printf '{MARK} %s %s %s %s\\n' {shlex.quote(cmd.path)} \"$rc\" "
                     "\"$(wc -c <\"$t/o\" | tr -d ' ')\" \"$(wc -c <\"$t/e\" | tr -d ' ')\"")
        lines.append("cat \"$t/o\" \"$t/e\"")
    lines.append("rm -rf \"$t\"")
    return "\n".join(lines) + "\n"


def unframe(data: bytes, source: str) -> dict[str, tuple[int, str, str]]:
    """Return {path: (exit code, output, error output)} from a framed script output; raise
    ``ValueError`` naming the byte offset where the framing breaks."""
    out: dict[str, tuple[int, str, str]] = {}
    at = 0
    while at < len(data):
        end = data.find(b"\n", at)
        header = data[at:end].decode(errors="replace") if end >= 0 else ""
        found = re.fullmatch(rf"{MARK} (\S+) (\d+) (\d+) (\d+)", header)
        if not found:
            raise ValueError(f"{source}: byte {at}: expected '{MARK} PATH RC OUT ERR', got {header[:80]!r}")
        path, rc, n_out, n_err = found.group(1), int(found.group(2)), int(found.group(3)), int(found.group(4))
        body = data[end + 1:end + 1 + n_out + n_err]
        if len(body) != n_out + n_err:
            raise ValueError(f"{source}: byte {end + 1}: {path}: {n_out + n_err} bytes announced, {len(body)} left")
        out[path] = (rc, body[:n_out].decode(), body[n_out:].decode())
        at = end + 1 + n_out + n_err
    return out


@dataclass
class Target:
    """How to reach a node and the cluster: the argv prefixes that run a shell script on the
    node, in the ztunnel pod, and ``kubectl``."""

    node: str
    on_node: list[str]  # + [script]
    kubectl: list[str] = field(default_factory=lambda: ["kubectl"])
    in_ztunnel: Callable[[str], list[str]] | None = None  # ztunnel pod name -> argv prefix (+ [script])
    describe: str = ""
    cleanup: str = ""
    netns_prefix: str = ""  # only namespaces whose name starts with this are searched for pods

    @classmethod
    def kind(cls, node: str) -> Target:
        """Return the target of kind node ``node`` (a docker container)."""
        return cls(node, ["docker", "exec", node, "sh", "-c"],
                   in_ztunnel=lambda pod: ["kubectl", "exec", "-n", "istio-system", pod, "--", "sh", "-c"],
                   describe=f"docker exec {node}")

    @classmethod
    def debug(cls, node: str, image: str = DEBUG_IMAGE) -> Target:
        """Return the target of node ``node`` reached through ``kubectl debug node/…``."""
        return cls(node, ["kubectl", "debug", f"node/{node}", "-q", "--attach", "--image", image, "--profile",
                          "sysadmin", "--", "chroot", "/host", "sh", "-c"],
                   in_ztunnel=lambda pod: ["kubectl", "exec", "-n", "istio-system", pod, "--", "sh", "-c"],
                   describe=f"kubectl debug node/{node} (chroot /host)",
                   cleanup=f"kubectl get pod -o name | grep node-debugger-{node} | xargs kubectl delete")


def lab_target(prefix: str, kubectl: Sequence[str] = ("kubectl",)) -> Target:
    """Return a live lab's node (and its ztunnel pod's namespace) as a target, read with
    ``ip netns exec``: the lab standing in for a real node."""
    return Target("ambient-worker2", ["ip", "netns", "exec", f"{prefix}-node", "sh", "-c"], list(kubectl),
                  in_ztunnel=lambda pod: ["ip", "netns", "exec", f"{prefix}-ztunnel", "sh", "-c"],
                  describe=f"ip netns exec {prefix}-node", netns_prefix=f"{prefix}-")


def cluster_commands(node: str) -> list[Command]:
    """Return the ``kubectl get`` commands: nodes, the node's pods, the ztunnel pods."""
    return [Command("cluster/kubectl-get-nodes.txt", ("get", "node"), "kubectl"),
            Command(f"cluster/kubectl-get-pods-{node}.txt", ("get", "pod", "-A", "-o", COLUMNS, "--field-selector",
                                                             f"spec.nodeName={node}"), "kubectl"),
            Command("cluster/kubectl-get-pods-ztunnel.txt", ("get", "pod", "-A", "-l", "app=ztunnel", "-o", COLUMNS),
                    "kubectl")]


@dataclass
class Plan:
    """What ``ambientlab capture`` will run: per host, the argv prefix and the commands."""

    target: Target
    runs: list[tuple[str, list[str], list[Command], str | None]]  # (host label, argv prefix, commands, netns)
    kubectl: list[Command]

    def printable(self) -> list[str]:
        """Return the commands as a reader would type them (for ``--dry-run``)."""
        lines = [f"{shlex.join(self.target.kubectl)} {shlex.join(c.argv)}  > {c.path}" for c in self.kubectl]
        for label, prefix, commands, netns in self.runs:
            wrap = f"ip netns exec {netns} " if netns else ""
            lines += [f"[{label}: {shlex.join(prefix[:-2])}] {wrap}{shlex.join(c.argv)}  > {c.path}" for c in commands]
        return lines


def _run(argv: list[str]) -> bytes:
    done = subprocess.run(argv, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{shlex.join(argv[:6])} …` failed ({done.returncode}): "
                           f"{done.stderr.decode(errors='replace').strip()[:300]}")
    return done.stdout


def _listing(kubectl: list[str], *argv: str) -> pd.DataFrame:
    """Return ``kubectl get pod … -o COLUMNS`` as the book's kubectl parser reads it."""
    return parse("kubectl", _run([*kubectl, "get", "pod", "-A", *argv, "-o", COLUMNS]).decode(),
                 f"kubectl get pod {' '.join(argv)}")


def pods_on(kubectl: list[str], node: str) -> list[tuple[str, str]]:
    """Return [(pod name, IP)] of the pods on ``node`` (``kubectl get pod``)."""
    frame = _listing(kubectl, "--field-selector", f"spec.nodeName={node}")
    return [(str(n), str(ip)) for n, ip in zip(frame["NAME"], frame["IP"], strict=True)]


def ztunnel_on(kubectl: list[str], node: str) -> str:
    """Return the name of the ztunnel pod on ``node``."""
    frame = _listing(kubectl, "-l", "app=ztunnel")
    found = [str(n) for n, on in zip(frame["NAME"], frame["NODE"], strict=True) if on == node]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} ztunnel pods on {node} (want 1)")
    return found[0]


def plan_capture(target: Target, ztunnel: str | None = None, pods: Sequence[tuple[str, str]] = ()) -> Plan:
    """Return the plan for ``target``: the node's commands; the ztunnel pod's (2022 design) if
    ``ztunnel`` names it; and the namespaces of ``pods`` [(name, IP)] found on the node (in-pod)."""
    runs: list[tuple[str, list[str], list[Command], str | None]] = [
        ("node", target.on_node, host_commands("node", ipset=True, tunnels=("istioin", "istioout")), None)]
    if ztunnel and target.in_ztunnel:
        runs.append((f"ztunnel pod {ztunnel}", target.in_ztunnel(ztunnel),
                     host_commands("ztunnel", ipset=False, tunnels=("pistioin", "pistioout")), None))
    for name, ip in pods:
        runs.append((f"pod {name} ({ip})", target.on_node, host_commands(name, ipset=False, tunnels=()), f"@{ip}"))
    return Plan(target, runs, cluster_commands(target.node))


def _find_netns(prefix: list[str], ip: str, only: str = "") -> str:
    """Return the name of the network namespace on the node whose address is ``ip`` (among
    those whose name starts with ``only``)."""
    probe = (f"for n in $(ip netns list | cut -d' ' -f1 | grep -e {shlex.quote('^' + re.escape(only))}); do "
             f"ip -n \"$n\" -4 -o addr show | grep -q ' {ip}/' && echo \"$n\"; done; true")
    found = _run([*prefix, probe]).decode().split()
    if len(found) != 1:
        raise RuntimeError(f"the node has {len(found)} network namespaces with address {ip} (want 1): {found}")
    return found[0]


def run_capture(plan: Plan, root: Path, istio: str | None = None) -> list[str]:
    """Run ``plan`` and write the capture folder ``root`` (manifest with origin ``recorded``,
    the date, the tools' versions and Istio's version if found); return the paths written."""
    if (root / "manifest.yaml").exists():
        raise FileExistsError(f"{root} already holds a capture")
    files: list[dict[str, Any]] = []
    kubectl = plan.target.kubectl

    def keep(cmd: Command, rc: int, out: str, err: str, command: str, host: str) -> None:
        if rc != 0 and cmd.optional:
            return
        if rc != 0:
            raise RuntimeError(f"{command} (on {host}) failed ({rc}): {err.strip()[:300]}")
        (root / cmd.path).parent.mkdir(parents=True, exist_ok=True)
        (root / cmd.path).write_text(out)
        files.append({"path": cmd.path, "command": command, "host": host, "origin": "recorded", "source": "this-run",
                      "parser": cmd.parser, **({"note": f"stderr: {err.strip()}"} if err.strip() else {})})

    for cmd in plan.kubectl:
        out = _run([*kubectl, *cmd.argv]).decode()
        keep(cmd, 0, out, "", f"kubectl {shlex.join(cmd.argv)}", "workstation (kubectl)")
    tools: dict[str, str] = {}
    for label, prefix, commands, netns in plan.runs:
        ns = _find_netns(prefix, netns[1:], plan.target.netns_prefix) if netns else None
        asked = [*commands, *(Command(f"version/{k}", v, "version") for k, v in VERSIONS.items())] if label == "node" \
            else commands
        framed = unframe(_run([*prefix, script(asked, ns)]), label)
        if label == "node":
            for key in VERSIONS:
                rc, out, err = framed[f"version/{key}"]
                tools[key] = (out or err).strip().splitlines()[0] if rc == 0 and (out or err).strip() else "not found"
        for cmd in commands:
            rc, out, err = framed[cmd.path]
            wrap = f"ip netns exec {ns} " if ns else ""
            keep(cmd, rc, out, err, f"{plan.target.describe}: {wrap}{shlex.join(cmd.argv)}"
                 if label == "node" or ns else f"kubectl exec {label.split()[-1]}: {shlex.join(cmd.argv)}", label)
    meta = {
        "title": f"node {plan.target.node}, recorded by ambientlab capture",
        "cluster": f"Istio {istio}" if istio else "Istio version not found",
        "sources": {"this-run": f"ambientlab capture, {plan.target.describe}, "
                                f"{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}"},
        "recorded": datetime.date.today().isoformat(),
        "node_tools": tools,
    }
    write_manifest(root, "Recorded by `ambientlab capture` (origin `recorded`). Checked by `ambientlab data`.", meta, files)
    return [f["path"] for f in files]


def istio_version(kubectl: list[str]) -> str | None:
    """Return istiod's image tag (the Istio version), or None if istiod is not found."""
    done = subprocess.run([*kubectl, "get", "deploy", "-n", "istio-system", "istiod", "-o",
                           "jsonpath={.spec.template.spec.containers[0].image}"], capture_output=True, text=True)
    image = done.stdout.strip()
    return image.rsplit(":", 1)[1] if done.returncode == 0 and ":" in image else None
