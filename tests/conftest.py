"""Shared fixtures: the data folder, and namespaces for the kernel-checked tests.

Kernel-checked tests skip where namespaces cannot be used, unless AMBIENTLAB_REQUIRE_NETNS=1
(set by .ci/run), which turns that skip into a failure.
"""

from __future__ import annotations

import os
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
