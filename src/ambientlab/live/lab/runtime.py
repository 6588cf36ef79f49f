"""The live lab: a capture's node, pods, ztunnel and peer rebuilt in network namespaces, with
the stand-in ztunnel and the app servers running, kept between commands.

A lab is named by its prefix: its namespaces are ``PREFIX-node``, ``PREFIX-ztunnel``,
``PREFIX-productpage-v1``… and its state (capture, tunnel type, processes, breaks) lives in
``$AMBIENTLAB_STATE/PREFIX/`` (default ``/run/ambientlab``). Nothing outside those namespaces
is touched.

The state is written as the build goes: the folder and ``state.json`` first, then each
namespace's name before it is made and each program's pid as soon as it runs, so ``lab status``
and ``lab down`` see whatever exists, even after a build that was killed. A build that fails or
is interrupted (Ctrl-C, SIGTERM) removes everything it made, and that teardown cannot itself be
interrupted (:mod:`ambientlab.live.interrupts`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
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
from ambientlab.core.constants import INPOD_REDIRECT as INPOD_REDIRECT_CAPTURE
from ambientlab.core.constants import WORKER as SECOND_CAPTURE
from ambientlab.core.redirection import IN_POD, IN_POD_REDIRECT, capture_rules, classify
from ambientlab.live.interrupts import NEW_SESSION, Interrupted, Interrupts, shielded
from ambientlab.live.lab.features import missing_required, pick_tunnel, probe_features
from ambientlab.live.lab.plan import PEER, SECOND, TUNNELS, Plan, build_cluster_plan, build_plan
from ambientlab.live.netns import NamespaceSet, netns_problem

PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9]{1,11}")
DESIGNS = ("2022", "inpod")
INPOD_RULES = {"1.22": INPOD_CAPTURE, "redirect": INPOD_REDIRECT_CAPTURE}  # `lab up --design inpod --rules`
_RULES_DESIGN = {"1.22": IN_POD, "redirect": IN_POD_REDIRECT}
STANDIN = "ambientlab.live.lab.standin"  # the module of the lab's programs, labelled `--lab PREFIX`


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
    """Return the prefixes of the labs that have a state folder on this machine: running, being
    built, or left by a build that was killed."""
    root = state_root()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and PREFIX_PATTERN.fullmatch(p.name)) \
        if root.is_dir() else []


def _check_prefix(prefix: str) -> None:
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise LabError(f"prefix {prefix!r}: use 2-12 lowercase letters and digits, starting with a letter")


def namespace_inodes(names: list[str]) -> set[int]:
    """Return the inodes of network namespaces ``names`` (a process inside one shows the same
    inode as its ``/proc/PID/ns/net``)."""
    out = set()
    for name in names:
        with contextlib.suppress(OSError):
            out.add(os.stat(f"/run/netns/{name}").st_ino)
    return out


def lab_processes(prefix: str, inodes: set[int]) -> list[int]:
    """Return the pids of lab ``prefix``'s processes: every process inside one of its namespaces
    (``inodes``: :func:`namespace_inodes` of namespaces that still have their names; a deleted
    namespace's inode may be given to a new one), and each program started for it (its command
    line runs :data:`STANDIN` with ``--lab PREFIX``), inside or not yet. A program shows an empty
    command line for a moment while it is exec'd, but by then it is inside its namespace."""
    found = []
    label = [b"--lab", prefix.encode()]
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            inside = os.stat(f"{entry.path}/ns/net").st_ino in inodes
            argv = [] if inside else Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or a zombie
            continue
        if inside or (STANDIN.encode() in argv and any(list(pair) == label for pair in itertools.pairwise(argv))):
            found.append(int(entry.name))
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove(prefix: str) -> list[str]:
    """Tear lab ``prefix`` down: kill its processes (:func:`lab_processes`), delete its
    namespaces and its state folder; return the namespaces deleted.

    Idempotent (a lab that is gone is not an error), and it runs to its end: Ctrl-C and SIGTERM
    wait until it is done (:func:`~ambientlab.live.interrupts.shielded`). It checks that nothing
    is left and tries again twice before it raises :class:`LabError`.
    """
    _check_prefix(prefix)
    folder = state_root() / prefix
    deleted: list[str] = []
    with shielded(f"finishing the teardown of lab {prefix} first"):
        for _ in range(3):
            names = namespaces_with_prefix(prefix)
            deleted += [n for n in names if n not in deleted]
            _kill(lab_processes(prefix, namespace_inodes(names)))
            for name in reversed(names):
                subprocess.run(["ip", "netns", "del", name], capture_output=True, **NEW_SESSION)
            _kill(lab_processes(prefix, set()))  # one that was entering a namespace meanwhile
            shutil.rmtree(folder, ignore_errors=True)
            left = namespaces_with_prefix(prefix) + [f"process {p}" for p in lab_processes(prefix, set())] + \
                ([str(folder)] if folder.exists() else [])
            if not left:
                return deleted
            time.sleep(0.1)
    raise LabError(f"lab {prefix}: could not remove {', '.join(left)}")


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
    def phase(self) -> str:
        """Return ``up``, or where its build is: ``starting`` (probes), ``building``, ``rolling back``."""
        return str(self.state.get("phase", "up"))

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
        """Write the state file (a new file renamed over the old: a reader never sees half of one)."""
        new = self.folder / "state.json.new"
        new.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.replace(new, self.folder / "state.json")

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


def open_lab(prefix: str | None = None, built: bool = True) -> Lab:
    """Return the running lab ``prefix``, or the only running lab when ``prefix`` is None. With
    ``built`` (the default) a lab whose build has not finished is refused, saying how to remove it."""
    if prefix is None:
        labs = running_labs()
        if len(labs) != 1:
            raise LabError("no lab is running (start one with `ambientlab lab up`)" if not labs else
                           f"several labs are running ({', '.join(labs)}): name one with --prefix")
        prefix = labs[0]
    _check_prefix(prefix)
    path = state_root() / prefix / "state.json"
    if not path.is_file():
        if path.parent.is_dir():
            raise LabError(f"lab {prefix} has a state folder but no state.json (its build stopped before it "
                           f"wrote one): `ambientlab lab down --prefix {prefix}` removes it")
        raise LabError(f"no lab {prefix!r} is running (no {path})")
    lab = Lab(prefix, json.loads(path.read_text()))
    if built and lab.phase != "up":
        raise LabError(f"lab {prefix} is not up: {describe_phase(lab)}")
    return lab


def describe_phase(lab: Lab) -> str:
    """Return ``up``, or what became of the lab's build and how to remove what it left."""
    if lab.phase == "up":
        return "up"
    builder = lab.state.get("builder")
    alive = isinstance(builder, int) and Path(f"/proc/{builder}").exists()
    where = f"being built ({lab.phase}) by process {builder}" if alive else \
        f"its build (process {builder}) stopped while {lab.phase}"
    return f"{where}; `ambientlab lab down --prefix {lab.prefix}` removes what it has"


# Started by a short-lived intermediate interpreter, so that the program is nobody's child here
# (no zombie, no Popen left running) and is reaped by init when `lab down` kills it.
_SPAWN = """
import subprocess, sys
log = open(sys.argv[1], "w")
proc = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True)
print(proc.pid)
"""


def _start(lab: Lab, guard: Interrupts, host: str, name: str, *args: str) -> None:
    """Start a stand-in program in ``host`` and record its pid in the state file before a
    signal may stop the build."""
    argv = ["ip", "netns", "exec", lab.full(host), sys.executable, "-m", STANDIN, *args, "--lab", lab.prefix]
    with guard.held():
        done = subprocess.run([sys.executable, "-c", _SPAWN, str(lab.folder / f"{name}.log"), *argv],
                              capture_output=True, text=True, check=True, **NEW_SESSION)
        lab.state["processes"][name] = {"host": host, "pid": int(done.stdout), "args": list(args)}
        lab.save()


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
    from ambientlab.live.lab.pki import service_account, spiffe_id  # cryptography: 0.2 s to import

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
    from ambientlab.live.lab.pki import service_account, write_pki  # cryptography: 0.2 s to import

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
       behaviour: str = "marks-2022", nodes: int = 1, design: str = "2022", kube_proxy: bool = False,
       inpod_rules: str | None = None) -> Lab:
    """Build a lab from ``capture`` and start its programs; return it.

    ``tunnel`` is geneve, vxlan or veth (default: the best this kernel has); ``behaviour`` is
    the stand-in ztunnel's (``marks-2022`` or ``no-marks``). With ``nodes=2`` a second node
    (capture :data:`~ambientlab.core.constants.WORKER`, hosts named ``worker-…``) joins
    over a bridge, and both stand-in ztunnels speak HBONE with certificates from a lab CA.
    ``design="inpod"`` builds an in-pod capture (default :data:`INPOD_CAPTURE`): the rules in
    the recorded pods' own namespaces, and a stand-in ztunnel inside each of them (behaviour
    ``inpod``); ``inpod_rules`` picks which rules: ``1.22`` (TPROXY, the default) or ``redirect``
    (today's, capture :data:`INPOD_REDIRECT_CAPTURE`, whose stand-ins also read 15006's original
    destination). With ``kube_proxy`` (one 2022 node) the node gets kube-proxy's reconstructed
    chains and the hosts the kube-proxy walks need (details-v1, and reviews-v1 of ambient-worker
    on the peer). A failed step removes everything built so far and raises :class:`LabError`
    naming the step and the capture line it applies.
    """
    if nodes not in (1, 2):
        raise LabError(f"a lab has 1 or 2 nodes, not {nodes}")
    if kube_proxy and (nodes != 1 or design != "2022"):
        raise LabError("kube-proxy's chains are loaded in a one-node 2022 lab only")
    if design not in DESIGNS:
        raise LabError(f"design {design!r} not in {DESIGNS}")
    if inpod_rules is not None and design != "inpod":
        raise LabError("--rules chooses the rules of an in-pod lab (--design inpod)")
    if design == "inpod":
        if nodes != 1:
            raise LabError("the in-pod lab has one node")
        if inpod_rules not in (None, *INPOD_RULES):
            raise LabError(f"in-pod rules {inpod_rules!r} not in {tuple(INPOD_RULES)}")
        capture = capture or INPOD_RULES[inpod_rules or "1.22"]
        found = classify(capture_rules(load_capture(capture))).design
        if found not in (IN_POD, IN_POD_REDIRECT):
            raise LabError(f"capture {capture} holds no in-pod rules of a pod ({found})")
        if inpod_rules is not None and found != _RULES_DESIGN[inpod_rules]:
            raise LabError(f"capture {capture} holds {found} rules, not the {inpod_rules} ones")
        behaviour = "inpod-redirect" if found == IN_POD_REDIRECT else "inpod"
    capture = capture or DEFAULT_CAPTURE
    prefix = prefix or f"al{secrets.token_hex(3)}"
    _check_prefix(prefix)
    if behaviour not in BEHAVIOURS and behaviour not in ("inpod", "inpod-redirect"):
        raise LabError(f"ztunnel behaviour {behaviour!r} not in {sorted(BEHAVIOURS)}")
    if namespaces_with_prefix(prefix) or (state_root() / prefix).exists():
        raise LabError(f"a lab with prefix {prefix!r} exists: `ambientlab lab down --prefix {prefix}` first")
    problem = netns_problem(f"{prefix}-probe")  # the probes' namespaces are under the lab's prefix too
    if problem:
        raise LabError(f"the live lab {problem}")
    lab = Lab(prefix, {"prefix": prefix, "phase": "starting", "builder": os.getpid(), "capture": capture,
                       "hosts": [], "namespaces": [], "processes": {}, "breaks": []})
    claimed = False
    with Interrupts() as guard:
        try:
            with guard.held():  # the folder is this build's (and so to be removed) once it is made
                try:
                    lab.folder.mkdir(parents=True)
                except FileExistsError:
                    raise LabError(f"a lab with prefix {prefix!r} exists: `ambientlab lab down --prefix {prefix}` "
                                   "first") from None
                claimed = True
                lab.save()
            _build(lab, guard, capture, tunnel, behaviour, nodes, design, kube_proxy)
        except BaseException:
            if claimed:
                try:  # noqa: SIM105 (a signal inside suppress's own __enter__ would not be suppressed)
                    guard.teardown()
                except Interrupted:
                    pass  # the signal came first; its handler has switched to the teardown itself
                _roll_back(lab)
            raise
    return lab


def _roll_back(lab: Lab) -> None:
    """Say in the state file that the build is being undone, and remove the lab."""
    lab.state["phase"] = "rolling back"
    with contextlib.suppress(OSError):
        lab.save()
    remove(lab.prefix)


def _build(lab: Lab, guard: Interrupts, capture: str, tunnel: str | None, behaviour: str, nodes: int,
           design: str, kube_proxy: bool = False) -> None:
    """Probe the kernel, make the lab's namespaces, apply the plan's steps, start the programs
    and wait until they are ready, recording each namespace and program in the state file."""
    prefix = lab.prefix
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
            build_plan(cap, chosen, lambda h: f"{prefix}-{h}", kube_proxy=kube_proxy))
    lab.state.update({"phase": "building", "capture": cap.name, "tunnel": chosen, "behaviour": behaviour,
                      "hosts": list(plan.hosts), "pods": plan.pods, "remote": plan.remote,
                      "ztunnel_ip": plan.ztunnel_ip, "ztunnels": plan.ztunnels,
                      "features": {f.name: f.ok for f in features},
                      "second_capture": second.name if second else None, "design": design, "inpod": plan.inpod,
                      "kube_proxy": kube_proxy})
    lab.save()
    started = time.monotonic()
    ns = NamespaceSet(prefix)
    for host, sysctls in plan.hosts.items():
        with guard.held():  # recorded before it is made, made whole before a signal may stop the build
            lab.state["namespaces"].append(ns.full(host))
            lab.save()
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
        _start(lab, guard, host, host, "ztunnel", "--behaviour", behaviour, *extra)
    for host in plan.inpod:  # in-pod: ztunnel's listeners inside each meshed pod's namespace
        _start(lab, guard, host, f"ztunnel-{host}", "ztunnel", "--behaviour", behaviour)
    for host in [*plan.pods, PEER]:
        _start(lab, guard, host, host, "app", "--name", host, "--port", str(APP_PORT))
    _wait_ready(lab)
    lab.state["build_seconds"] = round(time.monotonic() - started, 2)
    lab.state["phase"] = "up"
    lab.save()
