"""The primer's hooks figure (asked of the tracer), the mark cheat sheet (computed from the
captures' rules) and the netaddr address sets."""

from __future__ import annotations

from pathlib import Path

import netaddr
import pytest

from ambientlab import load_capture
from ambientlab.book import hooks, marks
from ambientlab.book.addresses import pod_set
from ambientlab.core.parse.iptables import parse_iptables_save
from ambientlab.core.trace import host_from_capture
from ambientlab.core.trace.netfilter import HOOK_TABLES
from tests.conftest import DATA

DEMO = load_capture("kind-2022-ambient-worker2")


# -- hooks ------------------------------------------------------------------------------------------
def test_the_three_paths_are_the_kernels() -> None:
    paths = hooks.hook_paths()
    stages = {kind: [s for s in paths.loc[kind, "stage"] if s in HOOK_TABLES or s.startswith("routing")]
              for kind in hooks.PATHS}
    assert [s if s in HOOK_TABLES else "routing" for s in stages["forwarded"]] == [
        "PREROUTING", "routing", "FORWARD", "POSTROUTING"]
    assert [s if s in HOOK_TABLES else "routing" for s in stages["to a local socket"]] == [
        "PREROUTING", "routing", "INPUT"]
    assert [s if s in HOOK_TABLES else "routing" for s in stages["sent by a local socket"]] == [
        "routing", "OUTPUT", "routing", "POSTROUTING"]
    assert paths.loc["forwarded", "stage"].iloc[0] == hooks.ENTER
    assert list(paths.loc["to a local socket", "stage"])[-1] == hooks.LOCAL
    assert paths.loc["sent by a local socket", "stage"].iloc[0] == hooks.LOCAL
    tables = paths.set_index("stage")["tables"]
    assert tables["PREROUTING"].iloc[0] == "raw > mangle > nat"
    assert tables["OUTPUT"] == "raw > mangle > nat > filter"


def test_the_paths_follow_the_tracer_not_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change the tracer's table order: the primer's table and figure change with it."""
    monkeypatch.setitem(HOOK_TABLES, "FORWARD", ("filter", "mangle"))
    paths = hooks.hook_paths().set_index("stage")["tables"]
    assert paths["FORWARD"] == "filter > mangle"


def test_the_figure_has_a_box_per_stage_and_an_arrow_per_step() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    ax = hooks.draw_hooks()
    paths = hooks.hook_paths()
    stages = set(paths["stage"])
    steps = {(a, b) for kind in hooks.PATHS for a, b in zip(list(paths.loc[kind, "stage"]),
                                                             list(paths.loc[kind, "stage"])[1:], strict=False)}
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == len(stages) == 11
    assert sum(isinstance(p, FancyArrowPatch) for p in ax.patches) == len(steps)
    texts = " ".join(t.get_text() for t in ax.texts)
    assert all(hook in texts for hook in HOOK_TABLES)
    plt.close(ax.figure)


# -- the mark cheat sheet ---------------------------------------------------------------------------
def _hosts() -> list[tuple[str, str, str]]:
    """(capture, host, rules file) of every host's full rules: iptables-save.txt, and the node's with
    kube-proxy's reconstructed chains."""
    return sorted((p.parts[-3], p.parts[-2], p.name) for name in ("iptables-save.txt", "iptables-save-kube-proxy.txt")
                  for p in Path(DATA).glob(f"*/*/{name}") if (p.parent / "ip-rule.txt").is_file())


@pytest.mark.parametrize(("capture", "host", "rules"), _hosts())
def test_every_mark_the_rules_set_has_a_meaning(capture: str, host: str, rules: str) -> None:
    sheet = marks.mark_sheet(load_capture(capture), host, rules)
    assert marks.NO_MEANING not in set(sheet["meaning"]), sheet.loc[sheet["meaning"] == marks.NO_MEANING, "mark"]
    assert all(sheet.loc[sheet["meaning"] != "", "source"].str.startswith(("istio/istio", "kubernetes/kubernetes")))


def test_every_meaning_is_used_by_a_capture() -> None:
    used = {(k, m) for capture, host, rules in _hosts() for k, m in
            marks.mark_sheet(load_capture(capture), host, rules)[["kind", "mark"]].itertuples(index=False)}
    assert set(marks.MEANINGS) == used


def test_the_node_sheet_names_its_setters_and_routes() -> None:
    sheet = marks.mark_sheet(DEMO, "node").set_index(["kind", "mark"])
    row = sheet.loc[(marks.PACKET, "0x100/0x100")]
    assert row["set by"] == "mangle PRE-15" and row["routed by"] == "ip rule 101 → table 101"
    assert row["table's default"] == "default via 192.168.127.2 dev istioout"
    assert sheet.loc[(marks.PACKET, "0x210/0x210"), "routed by"] == "ip rule 100 (goto 32766) → table main"
    assert sheet.loc[(marks.PACKET, "0x200/0x200"), "set by"] == "mangle PRE-1, mangle PRE-3, mangle PRE-6"
    assert sheet.loc[(marks.CONN, "0x220/0x220"), "set by"] == "mangle FWD-1 (saves), mangle IN-1 (saves)"
    assert sheet.loc[(marks.CONN, "0x220/0x220"), "read by"] == "mangle PRE-6"
    assert sheet.loc[(marks.PACKET, "0x220/0xffffffff"), "set by"] == "mangle OUT-1"
    assert sheet.loc[(marks.CONN, "0x220/0x220"), "routed by"] == ""


def test_the_ztunnel_sheet_has_the_socket_marks_that_no_rule_sets() -> None:
    sheet = marks.mark_sheet(DEMO, "ztunnel").set_index("mark")
    assert sheet.loc["0x401/0xfff", "set by"] == marks.SOCKET and sheet.loc["0x401/0xfff", "routed by"] == "ip rule 20001 → table 101"
    assert sheet.loc["0x400/0xfff", "set by"] == "mangle PREROUTING-2, mangle PREROUTING-3, mangle PREROUTING-4"
    assert sheet.loc["0x4d3/0xfff", "table's default"] == "local default dev lo scope host"
    # 0x4d2: no rule sets or reads it, yet ztunnel's onward sockets carry it; no ip rule selects it
    assert sheet.loc["0x4d2/0xfff", "set by"] == marks.SOCKET
    assert sheet.loc["0x4d2/0xfff", "bits"] == "the number 1234 (mask 0xfff)"
    assert sheet.loc["0x4d2/0xfff", "routed by"] == "no ip rule selects it: routed as an unmarked packet"
    assert "0x4d2/0xfff" not in set(marks.mark_sheet(DEMO, "node")["mark"])


def test_a_mark_set_in_output_is_read_only_on_its_later_path() -> None:
    """mangle OUT-1 sets 0x220 in OUTPUT: the PREROUTING, INPUT and FORWARD rules that read 0x220
    see it only on a packet looped back through lo, and FORWARD never."""
    sheet = marks.mark_sheet(DEMO, "node").set_index(["kind", "mark"])
    readers = sheet.loc[(marks.PACKET, "0x220/0xffffffff"), "read by"].split(", ")
    assert readers and all(r.endswith(marks.LOOPED) for r in readers)
    assert not any("FWD" in r for r in readers)
    assert "mangle FWD-1" in sheet.loc[(marks.PACKET, "0x220/0x220"), "read by"].split(", ")
    hooks_of = marks.hooks_of(DEMO.parse("node/iptables-save.txt").rules)
    assert hooks_of["ztunnel-PREROUTING"] == {"PREROUTING"} and hooks_of["ztunnel-FORWARD"] == {"FORWARD"}


def test_the_inpod_sheet_has_restore_and_connmark() -> None:
    sheet = marks.mark_sheet(load_capture("inpod-1.22-ambient-worker2"), "productpage-v1").set_index(["kind", "mark"])
    assert sheet.loc[(marks.PACKET, "0x111/0xfff"), "set by"] == "mangle OUT-1 (restores), mangle PRE-4, mangle PRE-6"
    assert sheet.loc[(marks.CONN, "0x111/0xfff"), "set by"] == "mangle PRE-1"
    assert sheet.loc[(marks.PACKET, "0x539/0xfff"), "routed by"] == "no ip rule selects it: routed as an unmarked packet"
    assert sheet.loc[(marks.PACKET, "0x539/0xfff"), "read by"].startswith(
        f"mangle PRE-1{marks.LOOPED}, not mangle PRE-4{marks.LOOPED}")


@pytest.mark.parametrize("host", ["node", "ztunnel"])
def test_the_routing_column_agrees_with_route_get(host: str) -> None:
    """Independently: the tracer's own ``ip route get`` with each mark decides by the last ip rule
    the sheet names (a destination that no table 100 route covers, so that defaults decide)."""
    model = host_from_capture(DEMO, host)
    for _, row in marks.mark_sheet(DEMO, host).iterrows():
        if row["kind"] != marks.PACKET or row["routed by"].startswith("no ip rule"):
            continue
        value = int(row["mark"].split("/")[0], 16)
        answer = model.route_get("10.96.183.192", mark=value)
        deciding = int(row["routed by"].split("ip rule ", 1)[1].split(" ")[0])
        assert (answer.get("_via") or answer["_rule"]).priority == deciding, (row["mark"], answer)
        if "(goto " in row["routed by"]:
            assert answer["_rule"].priority == int(row["routed by"].split("(goto ")[1].split(")")[0])


def test_marks_set_reads_each_target() -> None:
    rules = parse_iptables_save(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -j MARK --set-mark 0x5/0xf\n"
        "-A PREROUTING -j CONNMARK --save-mark --nfmask 0x10 --ctmask 0x10\n"
        "-A PREROUTING -m mark --mark 0x30/0x30 -j CONNMARK --save-mark --nfmask 0x10 --ctmask 0x30\n"
        "-A PREROUTING -m connmark --mark 0x7/0xff -j CONNMARK --restore-mark --nfmask 0xf --ctmask 0xffffffff\n"
        "-A PREROUTING -p tcp -j TPROXY --on-port 1 --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1\n"
        "-A PREROUTING -j ACCEPT\nCOMMIT\n", "t").rules
    got = [marks.marks_set(r.to_dict()) for _, r in rules.iterrows()]
    assert got == [[(marks.PACKET, 0x5, 0xF, "sets")], [], [(marks.CONN, 0x10, 0x30, "saves")],
                   [(marks.PACKET, 0x7, 0xF, "restores")], [(marks.PACKET, 0x1, 0x1, "TPROXY sets")], []]


# -- netaddr ----------------------------------------------------------------------------------------
def test_the_ipset_as_a_netaddr_set() -> None:
    members = pod_set(DEMO)
    assert isinstance(members, netaddr.IPSet)
    assert sorted(str(a) for a in members) == sorted(DEMO.parse("node/ipset-list.txt").members["elem"])
    assert "10.244.2.3" in members and "10.244.2.10" not in members
    with pytest.raises(KeyError, match="no ipset"):
        pod_set(DEMO, name="nope")


def test_the_layout_puts_each_route_on_its_own_cells() -> None:
    pos = hooks.layout([list("abcde"), ["a", "b", "x", "y"], ["y", "p", "q", "r", "d"]])
    assert pos == {"a": (0, 0), "b": (1, 0), "c": (2, 0), "d": (3, 0), "e": (4, 0), "x": (1, -1), "y": (1, -2),
                   "p": (2, -2), "q": (3, -2), "r": (3, -1)}
    paths = hooks.hook_paths()
    cells = hooks.layout([list(paths.loc[kind, "stage"]) for kind in hooks.PATHS])
    assert len(set(cells.values())) == len(cells) == 11
    with pytest.raises(ValueError, match="starts with a stage"):
        hooks.layout([["a"], ["z", "a"]])
    with pytest.raises(ValueError, match="share cell"):
        hooks.layout([["a", "b"], ["a", "x"], ["a", "y"]])


# -- reading rules aloud ----------------------------------------------------------------------------
def test_a_rule_is_read_part_by_part() -> None:
    from ambientlab.book.reading import read_rule

    parts = read_rule(DEMO, "mangle PRE-10")
    assert list(parts["mangle PRE-10: part"]) == ["-A ztunnel-PREROUTING", "! -s 10.244.2.10/32", "-i veth6cc9a213",
                                                  "-j MARK --set-xmark 0x210/0x210"]
    assert parts["reads as"].iloc[1] == "NOT: the source address is in 10.244.2.10/32"
    assert read_rule(DEMO, "nat PREROUTING-2")["reads as"].iloc[-1].startswith("jump to the chain KUBE-SERVICES")
    assert read_rule(DEMO, "mangle PRE-15")["reads as"].iloc[3] == "the source address is in the ipset ztunnel-pods-ips"
    with pytest.raises(KeyError, match="no rule"):
        read_rule(DEMO, "mangle PRE-99")


@pytest.mark.parametrize(("capture", "host"), sorted({(capture, host) for capture, host, _ in _hosts()}))
def test_every_rule_of_every_capture_can_be_read(capture: str, host: str) -> None:
    from ambientlab.book.reading import named_rules, read_rule

    opened = load_capture(capture)
    rules = named_rules(opened, host)
    assert rules["name"].is_unique
    for name, rule in zip(rules["name"], rules["text"], strict=True):
        parts = read_rule(opened, name, host)
        # the parts give the rule's text back (quotes aside: the parser keeps a quoted argument's words)
        assert " ".join(parts.iloc[1:, 0]).split() == rule.replace('"', "").split(), name


def test_route_tables_put_the_two_hosts_side_by_side() -> None:
    from ambientlab.book.addresses import route_tables, veth_owners

    tables = route_tables(DEMO)
    assert list(tables.columns) == ["node", "ztunnel"]
    assert tables.loc[(100, 1), "ztunnel"] == "local default dev lo scope host"
    assert tables.loc[(100, 2), "ztunnel"] == ""
    assert tables.loc[(101, 1), "node"] == "default via 192.168.127.2 dev istioout"
    assert tables.loc[(101, 1), "ztunnel"] == "default via 192.168.127.1 dev pistioout"
    assert len(tables.loc[100]) == len(DEMO.text("node/ip-route-table-100.txt").strip().splitlines())
    assert route_tables(DEMO, (7,), ("node",)).loc[(7, 1), "node"] == "(no such file)"
    owners = veth_owners(DEMO)
    assert owners["veth6cc9a213"] == "ztunnel-gzlxs (10.244.2.10)"
    assert owners["vethproductpage"].startswith("productpage-v1") and "eth0" not in owners
