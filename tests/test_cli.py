"""The command line: tables, JSON, and the exit code and message for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ambientlab.capture import list_captures
from tests.conftest import DATA


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ambientlab.cli", *args], capture_output=True, text=True)


def test_parse_json_uses_iproute2_keys() -> None:
    done = run("parse", "ip-rule", str(DATA / "kind-2022-ambient-worker2/node/ip-rule.txt"), "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)[1] == {"priority": 100, "src": "all", "fwmark": "0x200", "fwmask": "0x200", "goto": 32766}


def test_parse_table_and_excerpt_option() -> None:
    done = run("parse", "iptables-save", str(DATA / "kind-2022-ambient-worker2/node/iptables-save-nat-excerpt.txt"), "--excerpt")
    assert done.returncode == 0 and "KUBE-SERVICES" in done.stdout
    done = run("parse", "iptables-save", str(DATA / "kind-2022-ambient-worker2/node/iptables-save-nat-excerpt.txt"))
    assert done.returncode == 2 and "rule outside a table" in done.stderr


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "rules.txt"
    bad.write_text("0:\tfrom all lookup local\n100:\tfrom all fwmark 0x200/0x200 goto\n")
    done = run("parse", "ip-rule", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and f"{bad}:2:" in done.stderr and "'goto'" in done.stderr


def test_data_command_checks_every_capture() -> None:
    done = run("data")
    assert done.returncode == 0 and done.stdout.count("hashes match, all parse") == len(list_captures())
