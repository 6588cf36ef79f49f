"""`ambientlab capture` without a cluster: the framing of the node script, the dry run, and a
whole capture against fake docker/kubectl/ip/iptables-save on PATH that replay the demo
capture. The result must parse and walk like the capture it replays."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambientlab import load_capture
from ambientlab.cli.main import main
from ambientlab.core.trace.walks import walk
from ambientlab.live.collect import Command, script, unframe

DEMO = load_capture("kind-2022-ambient-worker2")


def test_the_script_frames_every_output_losslessly(tmp_path: Path) -> None:
    import subprocess

    commands = [Command("a/one.txt", ("printf", "two\\nlines"), "kubectl"),
                Command("a/none.txt", ("true",), "kubectl"),
                Command("a/err.txt", ("sh", "-c", "echo oops >&2; exit 3"), "kubectl")]
    out = subprocess.run(["sh", "-c", script(commands)], capture_output=True, check=True).stdout
    assert unframe(out, "test") == {"a/one.txt": (0, "two\nlines", ""), "a/none.txt": (0, "", ""),
                                    "a/err.txt": (3, "", "oops\n")}
    with pytest.raises(ValueError, match="byte 0: expected"):
        unframe(b"garbage\n", "test")
    with pytest.raises(ValueError, match=r"a/one\.txt: 9 bytes announced, 3 left"):
        unframe(out[:out.index(b"two") + 3], "test")


def test_dry_run_prints_only_read_only_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capture", "/nonexistent", "--kubectl-debug", "node1", "--with-ztunnel", "--pods", "web",
                 "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    tools = {line.split("] ")[1].split()[0] if "] " in line else line.split()[0] for line in lines}
    assert tools == {"kubectl", "ip", "ipset", "iptables-save", "sysctl"}
    assert all(" get " in line for line in lines if line.startswith("kubectl"))
    assert any(line.startswith("[node: kubectl debug node/node1") for line in lines)
    assert any(line.startswith("[pod web (POD-IP)") for line in lines)
    assert not Path("/nonexistent").exists()


def test_a_kind_capture_replayed_by_fakes_reads_and_walks_like_the_demo(fake_path: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    assert main(["capture", str(out), "--kind-node", "ambient-worker2", "--with-ztunnel"]) == 0
    assert "files and manifest.yaml written" in capsys.readouterr().out
    mine = load_capture(out)
    mine.verify()  # every file listed, hashed and parsed
    assert mine.manifest["cluster"] == "Istio 0.0.0-ambient.191fe680b52c1754ee72a06b3e0d3f9d116f2e82"
    assert set(mine.files["origin"]) == {"recorded"}
    assert mine.manifest["node_tools"]["iptables"] == "iptables v1.8.7 (nf_tables)"
    assert mine.manifest["node_tools"]["kernel"]  # uname is not faked: this machine's kernel answers
    for path in ("node/ip-rule.txt", "node/ip-route-table-100.txt", "node/iptables-save.txt", "node/ipset-list.txt",
                 "ztunnel/iptables-save.txt", "ztunnel/ip-d-link-pistioin.txt"):
        assert mine.text(path) == DEMO.text(path), path
    assert mine.entry("node/ip-rule.txt")["command"] == "docker exec ambient-worker2: ip rule"
    assert mine.parse("cluster/kubectl-get-pods-ambient-worker2.txt")["NODE"].unique().tolist() == ["ambient-worker2"]
    for scenario in ("same-node-vip", "inbound-remote"):
        assert walk(mine, scenario)["matched"].tolist() == walk(DEMO, scenario)["matched"].tolist()


def test_a_capture_refuses_to_overwrite_and_names_a_failing_command(fake_path: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    assert main(["capture", str(out), "--kind-node", "ambient-worker2"]) == 0
    assert main(["capture", str(out), "--kind-node", "ambient-worker2"]) == 2
    assert "already holds a capture" in capsys.readouterr().err
    monkeypatch.setenv("FAKE_CAPTURE", str(load_capture("kind-2022-kebe").root))  # no iptables-save of its own
    assert main(["capture", str(tmp_path / "kebe"), "--kind-node", "ambient-worker2"]) == 2
    assert "failed" in capsys.readouterr().err
