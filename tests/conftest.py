"""Shared fixtures: the data folder, and namespaces for the kernel-checked tests.

Kernel-checked tests skip where namespaces cannot be used, unless AMBIENTLAB_REQUIRE_NETNS=1
(set by .ci/run), which turns that skip into a failure.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

from ambientlab.live.netns import NamespaceSet, netns_problem

# Hypothesis's per-example deadline (200 ms by default) is a timed assertion: on a loaded machine
# it fails a property that holds. Speed is measured by `make bench`, not asserted in tests.
settings.register_profile("ambientlab", deadline=None)
settings.load_profile("ambientlab")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
AUDIT = Path(__file__).parent / "toolaudit"


def pytest_configure(config: pytest.Config) -> None:
    """Record every program the session starts (this process, xdist's workers and every Python
    they start: tests/toolaudit/sitecustomize.py); the session fails if one is not in
    ambientlab.live.systools.TOOLS (see :func:`pytest_sessionfinish`)."""
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        fd, path = tempfile.mkstemp(prefix="ambientlab-tools-", suffix=".txt")
        os.close(fd)
        config.stash[_AUDIT_FILE] = path
        os.environ["AMBIENTLAB_TOOL_AUDIT"] = path
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(AUDIT), os.environ.get("PYTHONPATH")]))
    from tests.toolaudit.sitecustomize import install

    install()


_AUDIT_FILE = pytest.StashKey[str]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when it started a program that ambientlab.live.systools does not list."""
    path = session.config.stash.get(_AUDIT_FILE, None)
    if path is None:
        return
    from ambientlab.live.systools import BY_NAME
    from tests.toolaudit.sitecustomize import undeclared

    records = Path(path).read_text().splitlines() if Path(path).exists() else []
    Path(path).unlink(missing_ok=True)
    found = undeclared(records, BY_NAME)
    if found:
        session.config.stash[_UNDECLARED] = found
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_UNDECLARED = pytest.StashKey[dict[str, str]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the programs the session started that ambientlab.live.systools does not list."""
    found = terminalreporter.config.stash.get(_UNDECLARED, None)
    if found:
        terminalreporter.section("programs started but not in ambientlab.live.systools.TOOLS", red=True)
        for name, where in sorted(found.items()):
            terminalreporter.line(f"{name}: {where}")


@pytest.fixture(scope="session")
def netns_ok() -> None:
    """Skip (or, with AMBIENTLAB_REQUIRE_NETNS=1, fail) when namespaces are unavailable."""
    problem = netns_problem()
    if problem:
        if os.environ.get("AMBIENTLAB_REQUIRE_NETNS") == "1":
            pytest.fail(f"kernel-checked tests required but cannot run: {problem}")
        pytest.skip(problem)


@pytest.fixture
def namespaces(netns_ok: None) -> Iterator[NamespaceSet]:
    """A fresh set of namespaces with a unique prefix, always deleted afterwards."""
    with NamespaceSet() as ns:
        yield ns


@pytest.fixture(scope="session")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the book once per test run, both editions (-W -n, from the notebooks' stored outputs,
    as `make book` does); return its ``_build/html`` folder (the Chinese edition is its ``zh/``).
    Under pytest-xdist the workers share one build: the first to come builds it while holding a
    lock. A failed build fails every test that uses it."""
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else \
        tmp_path_factory.getbasetemp()
    out, done_file = shared / "book", shared / "book.built"
    with open(shared / "book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done_file.exists():
            done = subprocess.run([sys.executable, str(ROOT / "book" / "build.py"), "--out", str(out / "_build")],
                                  capture_output=True, text=True, cwd=ROOT)
            done_file.write_text(str(done.returncode) + "\n" + done.stdout[-4000:] + done.stderr[-2000:])
    status, _, log = done_file.read_text().partition("\n")
    assert status == "0", log
    return out / "_build" / "html"


FAKES = Path(__file__).parent / "fakes"
FAKE_TOOLS = ("docker", "kubectl")


def write_fake(folder: Path, tool: str) -> Path:
    """Write an executable ``folder/tool`` that plays ``tool`` with tests/fakes/fake_tool.py; return it."""
    exe = folder / tool
    site = os.path.dirname(os.path.dirname(yaml.__file__))  # the fake runs without site (-S), faster
    exe.write_text(f"#!{sys.executable} -S\nimport os, sys\nsys.path.insert(0, {str(FAKES)!r})\n"
                   f"os.environ.setdefault('FAKE_SITE', {site!r})\nimport fake_tool\nsys.exit(fake_tool.main({tool!r}))\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put fake docker and kubectl first on PATH: they replay the demo capture's recorded outputs
    (tests/fakes/fake_tool.py) and log each call to ``FAKE_LOG`` (``bin/calls.log``); return their folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in FAKE_TOOLS:
        write_fake(bin_dir, tool)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CAPTURE", str(DATA / "kind-2022-ambient-worker2"))
    monkeypatch.setenv("FAKE_LOG", str(bin_dir / "calls.log"))
    return bin_dir


def book_module(path: str) -> Any:
    """Return module ``path`` of the book's own tooling (``book/build.py``, ``book/_ext/editions.py``),
    loaded under a name of its own (``build`` is also a package on PyPI)."""
    file = ROOT / path
    spec = importlib.util.spec_from_file_location("ambientlab_book_" + file.stem, file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

