"""The live lab's life on the real kernel: two labs at once and teardown, a failed build that
removes what it built, and the command line from `lab up` to `lab down`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ambientlab import load_capture
from ambientlab.core.capture import rehash
from ambientlab.live.lab.runtime import LabError, namespaces_with_prefix, remove, state_root, up
from tests.conftest import DATA

pytestmark = pytest.mark.kernel


def test_two_labs_run_at_once_and_down_leaves_nothing(netns_ok: None) -> None:
    first, second = up(prefix="altwoa"), up(prefix="altwob", tunnel="veth")
    try:
        with pytest.raises(LabError, match="a lab with prefix 'altwoa' exists"):
            up(prefix="altwoa")
        assert second.state["tunnel"] == "veth"
        for lab in (first, second):
            assert lab.connect("productpage-v1", "reviews-v1").startswith("hello from reviews-v1")
        first.down()
        assert namespaces_with_prefix("altwoa") == [] and not (state_root() / "altwoa").exists()
        assert second.connect("peer", "reviews-v1").startswith("hello from reviews-v1")
    finally:
        remove("altwoa")
        remove("altwob")
    assert namespaces_with_prefix("altwoa") == namespaces_with_prefix("altwob") == []
    assert remove("altwob") == []  # idempotent
    leftovers = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "altwo" not in leftovers


def test_a_failed_build_removes_what_it_built(netns_ok: None, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(DATA / "kind-2022-ambient-worker2", root)
    path = root / "node" / "ip-route-table-102.txt"
    # parses (a route may say scope host), but the kernel refuses a host-scope route with a gateway
    path.write_text(path.read_text().replace("onlink", "onlink scope host", 1))
    rehash(load_capture(root))  # an edit made on purpose
    with pytest.raises(LabError, match=r"ip-route-table-102.txt:1\) failed"):
        up(str(root), prefix="albroken")
    assert namespaces_with_prefix("albroken") == [] and not (state_root() / "albroken").exists()


def test_the_cli_runs_a_lab_from_up_to_down(netns_ok: None, capsys: pytest.CaptureFixture[str]) -> None:
    """`ambientlab lab …` as a reader runs it: up, exec and down as their own processes (the
    entry point; exec replaces the process), the other commands through main() in this one
    (each process start costs a second of imports)."""
    from ambientlab.cli.main import main

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ambientlab.cli.main", "lab", *argv], capture_output=True, text=True)

    def here(*argv: str) -> tuple[int, str, str]:
        code = main(["lab", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    try:
        assert cli("up", "--prefix", "alcli").returncode == 0
        code, out, _ = here("status", "--prefix", "alcli", "--json")
        assert code == 0 and json.loads(out)["processes"]["ztunnel"] == "running"
        code, out, err = here("trace", "productpage-v1", "reviews-v1", "--prefix", "alcli")
        assert code == 0 and "hooks agree" in out, out + err
        assert cli("exec", "node", "--prefix", "alcli", "--", "ip", "rule").stdout == \
            load_capture("kind-2022-ambient-worker2").text("node/ip-rule.txt")
    finally:
        assert cli("down", "--prefix", "alcli").returncode == 0
    code, out, _ = here("down", "--prefix", "alcli")
    assert code == 0 and "nothing left" in out
    code, _, err = here("status", "--prefix", "alcli")
    assert code == 2 and "no lab 'alcli' is running" in err
