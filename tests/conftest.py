"""Shared fixtures: the data folder, and namespaces for the kernel-checked tests.

Kernel-checked tests skip where namespaces cannot be used, unless AMBIENTLAB_REQUIRE_NETNS=1
(set by .ci/run), which turns that skip into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ambientlab.netns import NamespaceSet, netns_problem

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


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
    """Build the book once per test session (executing every notebook, -W -n); return its
    ``_build/html`` folder. A failed build fails every test that uses it."""
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return out / "_build" / "html"
