"""The live lab: a capture's node, pods, ztunnel and peer rebuilt in network namespaces, with
the stand-in ztunnel and the app servers running, kept between commands.

A lab is named by its prefix: its namespaces are ``PREFIX-node``, ``PREFIX-ztunnel``,
``PREFIX-productpage-v1``… and its state (capture, tunnel type, processes, breaks) lives in
``$AMBIENTLAB_STATE/PREFIX/`` (default ``/run/ambientlab``). Nothing outside those namespaces
is touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambientlab.core.capture import Capture, load_capture
from ambientlab.core.constants import APP_PORT, BEHAVIOURS
from ambientlab.core.constants import DEMO as DEFAULT_CAPTURE
from ambientlab.core.constants import INPOD as INPOD_CAPTURE
from ambientlab.core.constants import WORKER as SECOND_CAPTURE
from ambientlab.live.lab.features import missing_required, pick_tunnel, probe_features
from ambientlab.live.lab.pki import service_account, spiffe_id, write_pki
from ambientlab.live.lab.plan import PEER, SECOND, TUNNELS, Plan, build_cluster_plan, build_plan
from ambientlab.live.netns import NamespaceSet, netns_problem

PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9]{1,11}")
DESIGNS = ("2022", "inpod")


class LabError(RuntimeError):
    """A lab command that cannot be done; the message says why and what to do."""


def state_root() -> Path:
    """Return the folder that holds the labs' state (``$AMBIENTLAB_STATE`` or /run/ambientlab)."""
    return Path(os.environ.get("AMBIENTLAB_STATE", "/run/ambientlab"))


def namespaces_with_prefix(prefix: str) -> list[str]:
    """Return the names of existing network namespaces that belong to lab ``prefix``."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(n for n in (line.split()[0] for line in out.splitlines() if line.strip())
                  if n.startswith(f"{prefix}-"))


def running_labs() -> list[str]:
    """Return the prefixes of the labs that have state on this machine."""
    root = state_root()
    return sorted(p.parent.name for p in root.glob("*/state.json")) if root.is_dir() else []


def _check_prefix(prefix: str) -> None:
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise LabError(f"prefix {prefix!r}: use 2-12 lowercase letters and digits, starting with a letter")


def _kill_namespace_processes(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove(prefix: str) -> list[str]:
    """Tear lab ``prefix`` down: kill its processes, delete its namespaces and state; return the
    namespaces deleted. Idempotent: a lab that is already gone is not an error."""
    _check_prefix(prefix)
    names = namespaces_with_prefix(prefix)
    for name in names:
        _kill_namespace_processes(name)
    for name in reversed(names):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    shutil.rmtree(state_root() / prefix, ignore_errors=True)
    left = namespaces_with_prefix(prefix)
    if left:
        raise LabError(f"could not delete {', '.join(left)}")
    return names


@dataclass
class Lab:
    """A running lab, read from its state file."""

    prefix: str
    state: dict[str, Any]

    @property
    def folder(self) -> Path:
        """Return the lab's state folder (state.json and the processes' logs)."""
        return state_root() / self.prefix

    @property
    def ns(self) -> NamespaceSet:
        """Return the lab's namespaces as a NamespaceSet (closing it deletes them)."""
        ns = NamespaceSet(self.prefix)
        ns.names = [ns.full(h) for h in self.state["hosts"]]
        return ns

    def full(self, host: str) -> str:
        """Return the namespace name of lab host ``host``."""
        if host not in self.state["hosts"]:
            raise LabError(f"no host {host!r} in lab {self.prefix}; hosts: {', '.join(self.state['hosts'])}")
        return f"{self.prefix}-{host}"

    def run(self, host: str, *argv: str, stdin: str | None = None, check: bool = True) -> str:
        """Run ``argv`` in lab host ``host``; return its stdout (raise on failure if ``check``)."""
        self.full(host)
        return self.ns.run(host, *argv, stdin=stdin, check=check)

    def address(self, host: str) -> str:
        """Return the address a lab host talks from: a pod's IP, the peer's first remote pod."""
        if host in self.state["pods"]:
            return str(self.state["pods"][host])
        if host == "ztunnel":
            return str(self.state["ztunnel_ip"])
        if host in self.state.get("ztunnels", {}):
            return str(self.state["ztunnels"][host])
        if host == PEER:
            pods = [ip for ip, what in self.state["remote"].items() if not what.startswith("the ")]
            return pods[-1] if pods else next(iter(self.state["remote"]))
        raise LabError(f"{host} has no address of its own to talk from")

    def target(self, source: str, destination: str) -> str:
        """Return the address that lab host ``source`` connects to for ``destination``: a host of
        this lab (by the plan's name) or an IPv4 address. Names are never looked up, so no DNS
        query leaves the lab; anything else raises :class:`LabError` naming the hosts."""
        hosts = self.state["hosts"]
        if source not in hosts:
            raise LabError(f"{source} is not a host of lab {self.prefix}; its hosts: {', '.join(hosts)}")
        if destination in hosts:
            return self.address(destination)
        try:
            return str(ipaddress.IPv4Address(destination))
        except ValueError:
            raise LabError(f"{destination} is neither a host of lab {self.prefix} ({', '.join(hosts)}) nor an IPv4 "
                           "address (names are not looked up: no DNS query leaves the lab)") from None

    def save(self) -> None:
        """Write the state file."""
        (self.folder / "state.json").write_text(json.dumps(self.state, indent=1, sort_keys=True))

    def events(self, process: str) -> list[dict[str, Any]]:
        """Return the JSON events logged so far by ``process`` (``ztunnel`` or an app host)."""
        path = self.folder / f"{process}.log"
        out = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"event": "output", "text": line})
        return out

    def connect(self, source: str, destination: str, port: int = APP_PORT, sport: int = 0,
                timeout: float = 2.0, send: str = "") -> str:
        """Open one TCP connection from lab host ``source`` to ``destination`` (a lab host or an
        address) and return the app's greeting (and, with ``send``, the echo of that line), or
        ``error: …``."""
        dst = self.target(source, destination)
        argv = [sys.executable, "-m", "ambientlab.live.lab.standin", "client", dst, str(port), "--timeout", str(timeout)]
        if send:
            argv += ["--send", send]
        if source == PEER or sport:
            argv += ["--bind", self.address(source), "--sport", str(sport)]
        return self.run(source, *argv, check=False).strip()

    def hbone(self, source: str, to: str, authority: str, account: str, pki: Path | None = None) -> str:
        """Open a bare HBONE connection from lab host ``source`` to ``to`` (a lab host or an
        address; port 15008) with ``CONNECT authority``, presenting ``account``'s certificate
        from ``pki`` (default: the lab CA's folder) and trusting the lab CA; return the
        server's greeting or ``error: …``."""
        if "workloads" not in self.state:
            raise LabError("HBONE needs a two-node lab (`ambientlab lab up --nodes 2`)")
        ip = self.target(source, to)
        folder = pki or self.folder / "pki"
        argv = [sys.executable, "-m", "ambientlab.live.lab.tunnel", "client", ip, authority, "--cert",
                str(folder / f"{account}.pem"), "--key", str(folder / f"{account}.key"),
                "--ca", str(self.folder / "pki" / "ca.pem")]
        return self.run(source, *argv, check=False).strip()

    def down(self) -> list[str]:
        """Tear the lab down (see :func:`remove`)."""
        return remove(self.prefix)


def open_lab(prefix: str | None = None) -> Lab:
    """Return the running lab ``prefix``, or the only running lab when ``prefix`` is None."""
    if prefix is None:
        labs = running_labs()
        if len(labs) != 1:
            raise LabError("no lab is running (start one with `ambientlab lab up`)" if not labs else
                           f"several labs are running ({', '.join(labs)}): name one with --prefix")
        prefix = labs[0]
    _check_prefix(prefix)
    path = state_root() / prefix / "state.json"
    if not path.is_file():
        raise LabError(f"no lab {prefix!r} is running (no {path})")
    return Lab(prefix, json.loads(path.read_text()))


# Started by a short-lived intermediate interpreter, so that the program is nobody's child here
# (no zombie, no Popen left running) and is reaped by init when `lab down` kills it.
_SPAWN = """
import subprocess, sys
log = open(sys.argv[1], "w")
proc = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True)
print(proc.pid)
"""


def _start(lab: Lab, host: str, name: str, *args: str) -> None:
    argv = ["ip", "netns", "exec", lab.full(host), sys.executable, "-m", "ambientlab.live.lab.standin", *args]
    done = subprocess.run([sys.executable, "-c", _SPAWN, str(lab.folder / f"{name}.log"), *argv],
                          capture_output=True, text=True, check=True)
    lab.state["processes"][name] = {"host": host, "pid": int(done.stdout), "args": list(args)}


def _wait_ready(lab: Lab, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(lab.state["processes"])
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            if any(e.get("event") == "ready" for e in lab.events(name)):
                waiting.discard(name)
        time.sleep(0.02)
    if waiting:
        logs = {n: (lab.folder / f"{n}.log").read_text()[-500:] for n in waiting}
        raise LabError(f"not ready after {timeout} s: {logs}")


def _workloads(plan_pods: dict[str, str], node_of: dict[str, str]) -> dict[str, dict[str, str]]:
    """Return {pod IP: name, node, service account, SPIFFE ID} of a two-node lab's pods."""
    out = {}
    for host, ip in plan_pods.items():
        account = service_account(host)
        out[ip] = {"name": host, "node": node_of[host], "account": account,
                   "identity": spiffe_id(account)}
    return out


def _node_names(*captures: Capture) -> list[str]:
    """Return each capture's node name (the NODE of its ``kubectl get pod`` listing's pods)."""
    out = []
    for cap in captures:
        found = {str(n) for path in cap.files.index if path.startswith("cluster/kubectl-get-pods-")
                 and not path.endswith("-ztunnel.txt") for n in cap.parse(path)["NODE"]}
        if len(found) != 1:
            raise LabError(f"{cap.name}: cannot tell the node's name from its pod listing ({sorted(found)})")
        out.append(found.pop())
    return out


def _hbone_setup(lab: Lab, plan: Plan, captures: tuple[Capture, Capture]) -> dict[str, str]:
    """Create the lab CA and the workloads' certificates, and one HBONE configuration per
    ztunnel; return {ztunnel host: its configuration file}."""
    names = _node_names(*captures)
    node_of = {host: names[1] if host.startswith(SECOND) else names[0] for host in plan.pods}
    pki = lab.folder / "pki"
    write_pki(pki, [service_account(h) for h in plan.pods])
    workloads = _workloads(plan.pods, node_of)
    lab.state["nodes"] = {"ztunnel": names[0], f"{SECOND}ztunnel": names[1]}
    lab.state["workloads"] = workloads
    out = {}
    for host, node in lab.state["nodes"].items():
        path = lab.folder / f"{host}.hbone.json"
        path.write_text(json.dumps({"node": node, "pki": str(pki), "workloads": workloads}, indent=1, sort_keys=True))
        out[host] = str(path)
    return out


def up(capture: str | None = None, tunnel: str | None = None, prefix: str | None = None,
       behaviour: str = "marks-2022", nodes: int = 1, design: str = "2022") -> Lab:
    """Build a lab from ``capture`` and start its programs; return it.

    ``tunnel`` is geneve, vxlan or veth (default: the best this kernel has); ``behaviour`` is
    the stand-in ztunnel's (``marks-2022`` or ``no-marks``). With ``nodes=2`` a second node
    (capture :data:`~ambientlab.core.constants.WORKER`, hosts named ``worker-…``) joins
    over a bridge, and both stand-in ztunnels speak HBONE with certificates from a lab CA.
    ``design="inpod"`` builds an in-pod capture (default :data:`INPOD_CAPTURE`): the rules in
    the recorded pods' own namespaces, and a stand-in ztunnel inside each of them (behaviour
    ``inpod``). A failed step removes everything built so far and raises :class:`LabError`
    naming the step and the capture line it applies.
    """
    if nodes not in (1, 2):
        raise LabError(f"a lab has 1 or 2 nodes, not {nodes}")
    if design not in DESIGNS:
        raise LabError(f"design {design!r} not in {DESIGNS}")
    if design == "inpod":
        if nodes != 1:
            raise LabError("the in-pod lab has one node")
        capture, behaviour = capture or INPOD_CAPTURE, "inpod"
    capture = capture or DEFAULT_CAPTURE
    prefix = prefix or f"al{secrets.token_hex(3)}"
    _check_prefix(prefix)
    if behaviour not in BEHAVIOURS and behaviour != "inpod":
        raise LabError(f"ztunnel behaviour {behaviour!r} not in {sorted(BEHAVIOURS)}")
    if namespaces_with_prefix(prefix) or (state_root() / prefix).exists():
        raise LabError(f"a lab with prefix {prefix!r} exists: `ambientlab lab down --prefix {prefix}` first")
    problem = netns_problem(f"{prefix}-probe")  # the probes' namespaces are under the lab's prefix too
    if problem:
        raise LabError(f"the live lab {problem}")
    features = probe_features(prefix)
    missing = missing_required(features)
    if missing:
        raise LabError("this kernel lacks what the lab needs: " + "; ".join(f"{f.name} ({f.hint})" for f in missing))
    if nodes == 2 and not next(f.ok for f in features if f.name == "bridge"):
        raise LabError("a two-node lab joins its nodes with a bridge, which this kernel lacks (modprobe bridge)")
    chosen = tunnel or pick_tunnel(features)
    have = {f.name for f in features if f.ok} | {"veth"}
    if chosen not in TUNNELS:
        raise LabError(f"tunnel {chosen!r} not in {TUNNELS}")
    if chosen not in have:
        hint = next(f.hint for f in features if f.name == chosen)
        raise LabError(f"this kernel has no {chosen} devices ({hint}); try --tunnel {pick_tunnel(features)}")
    cap = load_capture(capture)
    second = load_capture(SECOND_CAPTURE) if nodes == 2 else None
    plan = (build_cluster_plan(cap, second, chosen, lambda h: f"{prefix}-{h}") if second else
            build_plan(cap, chosen, lambda h: f"{prefix}-{h}"))
    lab = Lab(prefix, {"prefix": prefix, "capture": cap.name, "tunnel": chosen, "behaviour": behaviour,
                       "hosts": list(plan.hosts), "pods": plan.pods, "remote": plan.remote,
                       "ztunnel_ip": plan.ztunnel_ip, "ztunnels": plan.ztunnels, "processes": {}, "breaks": [],
                       "features": {f.name: f.ok for f in features},
                       "second_capture": second.name if second else None, "design": design, "inpod": plan.inpod})
    started = time.monotonic()
    try:
        lab.folder.mkdir(parents=True)
        lab.save()
        ns = NamespaceSet(prefix)
        for host, sysctls in plan.hosts.items():
            ns.add(host, sysctls)
        for step in plan.steps:
            done = subprocess.run(ns.command(step.host, step.argv), input=step.stdin, capture_output=True, text=True)
            if done.returncode != 0:
                source = second.name if second and step.host.startswith(SECOND) else cap.name
                raise LabError(f"{step.host}: `{' '.join(step.argv)}` (from {source}/{step.why}) failed: "
                               f"{done.stderr.strip() or done.stdout.strip()}")
        configs = _hbone_setup(lab, plan, (cap, second)) if second else {}
        for host in plan.ztunnels:
            extra = ["--hbone", configs[host]] if host in configs else []
            _start(lab, host, host, "ztunnel", "--behaviour", behaviour, *extra)
        for host in plan.inpod:  # in-pod: ztunnel's listeners inside each meshed pod's namespace
            _start(lab, host, f"ztunnel-{host}", "ztunnel", "--behaviour", "inpod")
        for host in [*plan.pods, PEER]:
            _start(lab, host, host, "app", "--name", host, "--port", str(APP_PORT))
        _wait_ready(lab)
        lab.state["build_seconds"] = round(time.monotonic() - started, 2)
        lab.save()
    except BaseException:
        remove(prefix)
        raise
    return lab

