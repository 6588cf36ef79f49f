"""The command line: tables, JSON, and the exit code and message for bad input."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ambientlab.cli.main import main
from ambientlab.core.capture import list_captures
from tests.conftest import DATA


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line in this process (a new interpreter costs a second of imports); return
    its exit code and outputs. The tests of what only a process shows (a closed pipe, standard
    input) start one."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["ambientlab", *args], code, out.getvalue(), err.getvalue())


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


def test_a_closed_pipe_ends_quietly() -> None:
    done = subprocess.run(f"{sys.executable} -m ambientlab.cli.main parse iptables-save "
                          f"{DATA / 'kind-2022-ambient-worker2/node/iptables-save.txt'} --json | head -1",
                          shell=True, capture_output=True, text=True, executable="/bin/sh")
    assert done.stdout == "[\n" and done.stderr == ""


def test_a_directory_or_an_unreadable_file_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    done = run("parse", "ip-rule", str(tmp_path))
    assert done.returncode == 2 and done.stderr == f"ambientlab: {tmp_path}: is a directory, not a file\n"
    done = run("route-get", "--rules", str(tmp_path / "none"), "--routes", str(tmp_path), "10.0.0.1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "none: cannot read: No such file" in done.stderr
    locked = tmp_path / "locked.txt"
    locked.write_text("0:\tfrom all lookup local\n")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)  # root reads any file, so refusal is played
    assert main(["parse", "ip-rule", str(locked)]) == 2
    assert capsys.readouterr().err == f"ambientlab: {locked}: cannot read: Permission denied\n"


def test_invalid_utf8_is_bad_input_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "rules.txt"
    bad.write_bytes(b"0:\tfrom all lookup local\n100:\tfrom all \xff\xfe lookup 100\n")
    done = run("parse", "ip-rule", str(bad))
    assert done.returncode == 2
    assert done.stderr == f"ambientlab: {bad}:2: invalid UTF-8 at column 15 (invalid start byte): '0xff'\n"
    done = subprocess.run([sys.executable, "-m", "ambientlab.cli.main", "parse", "ip-rule", "-"], input=b"\x80\n",
                          capture_output=True)
    assert done.returncode == 2 and b"<stdin>:1: invalid UTF-8 at column 1" in done.stderr
