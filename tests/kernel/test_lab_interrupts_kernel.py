"""A double Ctrl-C during `lab up` leaves nothing behind.

`ambientlab lab up` runs as its own process in its own process group, as in a terminal; the test
sends SIGINT to the whole group (what Ctrl-C does) at a seeded random moment of the build, then a
second SIGINT while the first one's rollback runs, ten times. Each `lab up` is forked from a
warm interpreter (:func:`serve`) that has imported the command line and read the demo capture
once: the same `main(["lab", "up", …])` in a process of its own, without a second of imports
and parsing per try (on two cores, ten of those would add 20 s of CPU to the test run). The moments are picked by the
build's progress as its state file shows it (the folder made, the plan chosen, the n-th namespace
recorded, the n-th program started), plus a random few milliseconds, so every part of the build is
hit however loaded the machine is. Afterwards nothing of the lab may be left: no namespace with its
prefix, no process in one of its namespaces or naming the lab, no state folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ambientlab import load_capture
from ambientlab.core.constants import DEMO
from ambientlab.live.lab.plan import build_plan
from ambientlab.live.lab.runtime import namespaces_with_prefix, remove, state_root

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.kernel

TRIES = 10
LANES = 2  # tries at once: each waits on its process most of the time
SEED = 20


def _progress(folder: Path) -> tuple[int, str]:
    """Return (how far the build is, its phase) from the state folder: 0 when the folder exists,
    1 once the plan is recorded, then one more per namespace and per program recorded."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):  # not there yet, or gone
        return (0 if folder.exists() else -1), "none"
    done = 0 if state["phase"] == "starting" else 1 + len(state["namespaces"]) + len(state["processes"])
    return done, state["phase"]


def _namespace_inodes(prefix: str | None) -> set[int]:
    """Return the inodes of the lab's namespaces now (of every named namespace with None); a
    process inside one has it as /proc/PID/ns/net."""
    out = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir("/run/netns"):
            if prefix is None or entry.name.startswith(f"{prefix}-"):
                with contextlib.suppress(OSError):
                    out.add(os.stat(entry.path).st_ino)
    return out


def _leftover_processes(prefix: str, inodes: set[int]) -> list[str]:
    """Return the processes that name the lab, or run in one of its namespaces (``inodes``, seen
    while it was built). The kernel gives a deleted namespace's inode to new ones: an inode that
    is a named namespace's now (another lab's, another test's) is not the lab's."""
    ours = inodes - _namespace_inodes(None)
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().decode(errors="replace").split("\0")
            inode = os.stat(Path(entry.path, "ns", "net")).st_ino
        except OSError:
            continue
        if inode in ours or any(prefix in arg for arg in argv):
            found.append(f"{entry.name}: {' '.join(argv)}")
    return found


def serve() -> None:
    """The fork server (run as its own process): for each line ``PREFIX ERRFILE`` on stdin, fork
    `ambientlab lab up --prefix PREFIX` in a session of its own with stderr to ERRFILE, print its
    pid, wait for it and print its exit code (130 when a Ctrl-C ended it after ``main``)."""
    from ambientlab.cli.main import main

    build_plan(load_capture(DEMO), "vxlan", lambda host: host)  # parsed once, here
    for line in sys.stdin:
        prefix, errfile = line.split()
        pid = os.fork()
        if pid == 0:  # the `lab up` process
            code = 1
            try:
                os.setsid()
                os.dup2(os.open(errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
                code = main(["lab", "up", "--prefix", prefix])
            except KeyboardInterrupt:  # the second Ctrl-C, after main had finished
                code = 130
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)


def _one_try(server: subprocess.Popen[str], index: int, events: int, tmp: Path) -> dict[str, Any]:
    """Start `lab up` through ``server``, interrupt it twice, and return what happened and what
    was left."""
    rng = random.Random(SEED * 1000 + index)
    prefix = f"alsig{SEED}x{index}"
    folder = state_root() / prefix
    at, jitter, second_jitter = rng.randrange(events), rng.uniform(0, 0.05), rng.uniform(0, 0.03)
    inodes: set[int] = set()
    started = time.monotonic()
    assert server.stdin and server.stdout
    server.stdin.write(f"{prefix} {tmp / prefix}.err\n")
    server.stdin.flush()
    pid = int(server.stdout.readline())
    code: int | None = None
    try:
        alive = Path(f"/proc/{pid}/stat").exists  # until the server has reaped it
        while _progress(folder)[0] < at and alive():
            inodes |= _namespace_inodes(prefix)
            time.sleep(0.005)
        time.sleep(jitter)
        inodes |= _namespace_inodes(prefix)
        phase_hit = _progress(folder)[1]
        for pause in (0.0, second_jitter):  # the second: once the rollback has begun
            time.sleep(pause)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGINT)
            while _progress(folder)[1] not in ("rolling back", "none") and alive():
                time.sleep(0.002)
        code = int(server.stdout.readline())
        err = (tmp / f"{prefix}.err").read_text()
        left = {"namespaces": namespaces_with_prefix(prefix), "processes": _leftover_processes(prefix, inodes),
                "state folder": folder.exists()}
        return {"try": index, "event": at, "phase": phase_hit, "code": code, "stderr": err,
                "left": left, "second during teardown": "finishing the teardown" in err,
                "seconds": round(time.monotonic() - started, 2)}
    finally:
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        remove(prefix)  # whatever the test found, the next test starts clean


def test_two_ctrl_c_during_lab_up_leave_nothing_ten_times_out_of_ten(netns_ok: None, tmp_path: Path) -> None:
    plan = build_plan(load_capture(DEMO), "vxlan", lambda host: host)
    programs = len(plan.ztunnels) + len(plan.inpod) + len(plan.pods) + 1  # + the peer's app
    events = 2 + len(plan.hosts) + programs  # the values _progress can show: 0 … the last program started
    servers = [subprocess.Popen([sys.executable, "-c", f"from {__name__} import serve; serve()"], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
               for _ in range(LANES)]
    try:
        with ThreadPoolExecutor(LANES) as pool:
            lanes = [pool.submit(lambda lane: [_one_try(servers[lane], i, events, tmp_path)
                                               for i in range(lane, TRIES, LANES)], lane) for lane in range(LANES)]
            results = sorted((r for lane in lanes for r in lane.result()), key=lambda r: r["try"])
    finally:
        for server in servers:
            server.communicate("")  # end of input: the server ends
    report = "\n".join(f"{r['try']}: event {r['event']} ({r['phase']}), exit {r['code']}, second SIGINT "
                       f"{'during' if r['second during teardown'] else 'after'} the teardown, left {r['left']}, "
                       f"{r['seconds']} s, stderr {r['stderr'][-200:]!r}" for r in results)
    for r in results:
        # the first Ctrl-C stopped the build
        assert "interrupted by SIGINT (what it had built is removed)" in r["stderr"], report
        assert r["code"] == 130, report
        assert r["left"] == {"namespaces": [], "processes": [], "state folder": False}, report
    assert any(r["second during teardown"] for r in results), report  # the case of the issue was met


def test_a_build_killed_midway_is_seen_by_status_and_removed_by_down(netns_ok: None,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`lab up` killed outright (SIGKILL: no rollback) after its second program started: the
    state written as the build went lets `lab status` show what exists and `lab down` remove it."""
    from ambientlab.cli.main import main

    prefix, inodes = "alkilled", set()
    folder, hosts = state_root() / prefix, len(build_plan(load_capture(DEMO), "vxlan", lambda host: host).hosts)
    proc = subprocess.Popen([sys.executable, "-m", "ambientlab.cli.main", "lab", "up", "--prefix", prefix],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while proc.poll() is None and _progress(folder)[0] < 1 + hosts + 2:  # the plan, the namespaces, 2 programs
            inodes |= _namespace_inodes(prefix)
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert main(["lab", "status", "--prefix", prefix, "--json"]) == 1  # not up
        shown = json.loads(capsys.readouterr().out)
        assert shown["phase"].startswith(f"its build (process {proc.pid}) stopped while building; `ambientlab lab "
                                         f"down --prefix {prefix}` removes what it has"), shown
        assert len(shown["namespaces"]) == hosts and list(shown["processes"].values())[:2] == ["running", "running"]
        assert main(["lab", "connect", "productpage-v1", "reviews-v1", "--prefix", prefix]) == 2
        assert "is not up: its build" in capsys.readouterr().err
        assert main(["lab", "down", "--prefix", prefix]) == 0
        assert capsys.readouterr().out == f"lab {prefix}: {hosts} namespaces deleted\n"
        assert (namespaces_with_prefix(prefix), _leftover_processes(prefix, inodes), folder.exists()) == ([], [], False)
    finally:
        proc.kill()
        proc.wait()
        remove(prefix)
