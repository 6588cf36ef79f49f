"""The live lab without root: its plan comes from the capture files, and the recorded lab
session (data/lab-2026-11-ambient-worker2) agrees with the tracer."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from ambientlab import load_capture
from ambientlab.core.capture import rehash
from ambientlab.core.errors import ParseError
from ambientlab.core.parse import parse
from ambientlab.core.parse.ip_route import parse_ip_route_records
from ambientlab.core.trace import host_from_capture
from ambientlab.core.trace.batch import answer, parse_query, public
from ambientlab.core.trace.breaks import PIECES
from ambientlab.core.trace.nftrace import compare, kernel_segments
from ambientlab.core.trace.predict import Connection, predict
from ambientlab.live.lab.plan import PlanError, build_plan
from tests.conftest import DATA

DEMO = load_capture("kind-2022-ambient-worker2")
SESSION = load_capture("lab-2026-11-ambient-worker2")


def _plan():  # type: ignore[no-untyped-def]
    return build_plan(DEMO, "vxlan", lambda host: f"t-{host}")


def test_plan_applies_every_rule_and_route_line_of_the_capture() -> None:
    plan = _plan()
    for host in ("node", "ztunnel"):
        rules = DEMO.text(f"{host}/ip-rule.txt").splitlines()
        added = {s.why: s.argv for s in plan.steps if s.host == host and s.argv[:3] == ("ip", "rule", "add")}
        custom = [n for n, line in enumerate(rules, 1) if line.split(":")[0] not in ("0", "32766", "32767")]
        assert sorted(added) == sorted(f"{host}/ip-rule.txt:{n}" for n in custom)
        for n in custom:
            assert " ".join(added[f"{host}/ip-rule.txt:{n}"][5:]) == rules[n - 1].split(None, 1)[1]
        for path in DEMO.files.index:
            if path.startswith(f"{host}/ip-route-table-") and "local" not in path:
                lines = DEMO.text(path).splitlines()
                for n, line in enumerate(lines, 1):
                    steps = [s for s in plan.steps if s.why == f"{path}:{n}"]
                    assert ("proto kernel" in line) == (not steps), (path, n)
                    if steps:
                        assert " ".join(steps[0].argv[5:]) == line
        restore = [s for s in plan.steps if s.host == host and s.argv == ("iptables-restore",)]
        assert [s.stdin for s in restore] == [DEMO.text(f"{host}/iptables-save.txt")]


def test_plan_wires_each_pod_and_the_peer_from_the_capture() -> None:
    plan = _plan()
    assert plan.pods == {"ratings-v1": "10.244.2.2", "productpage-v1": "10.244.2.3", "reviews-v2": "10.244.2.5",
                         "reviews-v1": "10.244.2.7", "reviews-v3": "10.244.2.8"}
    assert set(plan.remote) == {"172.18.0.1", "172.18.0.3", "172.18.0.4", "10.244.0.6", "10.244.1.19"}
    links = [s.argv for s in plan.steps if s.argv[:3] == ("ip", "link", "add")]
    assert sum("vxlan" in a for a in links) == 4 and sum("veth" in a for a in links) == 7
    veth = _plan_for("veth")
    assert sum("vxlan" in s.argv or "geneve" in s.argv for s in veth.steps) == 0


def _plan_for(tunnel: str):  # type: ignore[no-untyped-def]
    return build_plan(DEMO, tunnel, lambda host: f"t-{host}")


def test_plan_refuses_a_capture_without_the_files_it_needs() -> None:
    with pytest.raises(PlanError, match=r"kind-2022-kebe lacks node/ip-addr\.txt"):
        build_plan(load_capture("kind-2022-kebe"), "vxlan", str)


def test_plan_refuses_a_device_it_cannot_place(tmp_path: Path) -> None:
    root = tmp_path / "cap"
    shutil.copytree(DATA / "kind-2022-ambient-worker2", root)
    path = root / "node" / "ip-route-table-main.txt"
    path.write_text(path.read_text().replace("10.244.2.8 dev vethreviewsv3 scope host\n", ""))
    rehash(load_capture(root))  # an edit made on purpose
    with pytest.raises(PlanError, match="vethreviewsv3 is a veth but no `scope host` route"):
        build_plan(load_capture(root), "vxlan", str)


def test_nft_trace_parser_is_lossless_or_names_the_line() -> None:
    text = SESSION.text("session/trace-marks-2022-productpage-v1-node.txt")
    events = parse("nft-trace", text)
    assert len(events) == len([ln for ln in text.splitlines() if ln.strip()])
    assert set(events["event"]) == {"packet", "rule", "policy"}
    with pytest.raises(ParseError, match=r"x:3: .*not an `nft monitor trace` event"):
        parse("nft-trace", "\n".join(text.splitlines()[:2] + ["garbage here"]) + "\n", "x")


def _connection(stem: str) -> tuple[Connection, dict[str, object]]:
    rec = json.loads(SESSION.text(f"{stem}.jsonl"))
    fields = {k: rec[k] for k in Connection.__dataclass_fields__}
    return Connection(**fields), rec


@pytest.mark.parametrize("stem", sorted({p.rsplit("-", 1)[0] for p in SESSION.files.index
                                          if p.startswith("session/trace-") and p.endswith("-node.txt")}))
def test_recorded_traces_agree_with_the_tracer_hook_by_hook(stem: str) -> None:
    conn, rec = _connection(stem)
    texts = {h: SESSION.text(f"{stem}-{h}.txt") for h in ("node", "ztunnel")}
    table = compare(predict(conn).hops, kernel_segments(texts))
    assert len(table) > 30 and table["agree"].all(), table[~table["agree"]].to_string()
    assert str(rec["client_output"]).startswith("hello from reviews-v1")


@pytest.mark.parametrize("behaviour", ["marks-2022", "no-marks"])
def test_recorded_breaks_match_the_tracers_prediction(behaviour: str) -> None:
    rows = [json.loads(line) for line in SESSION.text(f"session/breaks-{behaviour}.jsonl").splitlines()]
    # the session was recorded before node-nat-accept-0x100 (kube-proxy's break) was a piece
    recorded = [p for p in PIECES if p != "node-nat-accept-0x100"]
    assert len(rows) == 2 * (len(recorded) + 1) and {r["piece"] for r in rows} == {"none", *recorded}
    for row in rows:
        client_host = "the rest of the cluster (eth0)" if row["client"] == "peer" else row["client"]
        conn = Connection(DEMO.name, behaviour, client_host, row["client_address"], "reviews-v1", "10.244.2.7",
                          41000, 42000)
        works = row["result"].startswith("hello from reviews-v1")
        piece = None if row["piece"] == "none" else row["piece"]
        assert predict(conn, piece).works == works, row


def test_recorded_route_gets_equal_the_tracers_answers_on_the_2022_capture() -> None:
    hosts = {h: host_from_capture(DEMO, h) for h in ("node", "ztunnel")}
    paths = [p for p in SESSION.files.index if "-route-get-" in p]
    assert len(paths) == 12
    for path in paths:
        query = parse_query(" ".join(shlex.split(SESSION.entry(path)["command"])[3:]), path)
        kernel, _ = parse_ip_route_records(SESSION.text(path), path, allow_errors=True)
        mine = public(answer(hosts[path.split("/")[1].split("-")[0]], query))
        kernel[0].pop("failed", None)
        assert mine == kernel[0], path


def test_the_lab_recording_reads_like_the_2022_capture() -> None:
    for host in ("node", "ztunnel"):
        for path in SESSION.files.index:
            if path.startswith(f"{host}/") and "ipset" not in path and "ip-d-link" not in path:
                assert SESSION.text(path) == DEMO.text(path), path


def test_up_says_why_without_root_or_a_kernel_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    from ambientlab.live.lab import runtime
    from ambientlab.live.lab.features import PROBES, Feature

    monkeypatch.setattr(runtime, "netns_problem", lambda probe: "needs root (network namespaces)")
    with pytest.raises(runtime.LabError, match=r"the live lab needs root"):
        runtime.up(prefix="alnoroot")
    monkeypatch.setattr(runtime, "netns_problem", lambda probe: None)
    monkeypatch.setattr(runtime, "namespaces_with_prefix", lambda prefix: [])
    features = [Feature(name, name != "TPROXY", required, hint) for name, required, _, hint in PROBES]
    monkeypatch.setattr(runtime, "probe_features", lambda prefix: features)
    with pytest.raises(runtime.LabError, match=r"lacks what the lab needs: TPROXY \(CONFIG_NETFILTER_XT_TARGET_TPROXY"):
        runtime.up(prefix="alnotproxy")
    features = [Feature(name, name != "geneve", required, hint) for name, required, _, hint in PROBES]
    monkeypatch.setattr(runtime, "probe_features", lambda prefix: features)
    with pytest.raises(runtime.LabError, match=r"no geneve devices \(CONFIG_GENEVE.*try --tunnel vxlan"):
        runtime.up(prefix="alnogeneve", tunnel="geneve")


def test_the_probes_namespace_is_under_the_labs_prefix_and_deleted_even_when_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from ambientlab.live import netns

    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        if argv[:3] == ["ip", "netns", "add"]:
            raise KeyboardInterrupt  # Ctrl-C while the namespace is being made
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(netns.subprocess, "run", run)
    with pytest.raises(KeyboardInterrupt):
        netns.netns_problem("alabc-probe")
    assert calls == [["ip", "netns", "add", "alabc-probe"], ["ip", "netns", "del", "alabc-probe"]]


def test_lab_names_resolve_from_the_plan_only_and_exec_wants_its_command_after_dashes(capsys: pytest.CaptureFixture[str]) -> None:
    from ambientlab.cli.main import main
    from ambientlab.live.lab.runtime import Lab, LabError

    lab = Lab("alnames", {"hosts": ["node", "productpage-v1", "reviews-v1"], "pods": {"reviews-v1": "10.244.2.7"}})
    assert lab.target("productpage-v1", "reviews-v1") == "10.244.2.7"
    assert lab.target("productpage-v1", "10.96.183.192") == "10.96.183.192"
    with pytest.raises(LabError, match=r"nosuch is neither a host of lab alnames \(node, productpage-v1, reviews-v1\) nor an IPv4"):
        lab.target("productpage-v1", "nosuch")  # no name lookup: no DNS query leaves the lab
    with pytest.raises(LabError, match="nosuch is not a host of lab alnames"):
        lab.target("nosuch", "reviews-v1")
    assert main(["lab", "exec", "node", "--prefix", "alnames"]) == 2
    err = capsys.readouterr().err
    assert "write the command after `--`" in err and "got `--prefix alnames` without one" in err


def test_prefixes_are_checked_before_anything_is_touched() -> None:
    from ambientlab.live.lab.runtime import LabError, remove

    for bad in ("A", "x", "has-dash", "toolongprefix1", "1abc", "../etc"):
        with pytest.raises(LabError, match="2-12 lowercase letters"):
            remove(bad)


def test_the_stand_in_programs_start_without_pandas() -> None:
    """Every lab connection starts a stand-in client (``python -m ambientlab.live.lab.standin``): it
    must not load the book's stack (pandas alone took 0.8 s of its 1.1 s start)."""
    import subprocess
    import sys

    code = ("import sys, ambientlab.live.lab.standin, ambientlab.live.lab.tunnel\n"
            "print(sorted(m for m in ('pandas', 'matplotlib', 'yaml', 'ambientlab.core.capture') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
