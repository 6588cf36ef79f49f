"""The data set: manifests, hashes, parsing, and agreement between recorded and reconstructed files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ambientlab.core.capture import ManifestError, list_captures, load_capture, rehash
from ambientlab.core.parse import to_records
from tests.conftest import DATA

CAPTURES = list_captures()


def test_both_2022_captures_exist() -> None:
    assert {"kind-2022-ambient-worker2", "kind-2022-kebe"} <= set(CAPTURES)


@pytest.mark.parametrize("name", CAPTURES)
def test_manifest_hashes_and_listing(name: str) -> None:
    load_capture(name).verify()


@pytest.mark.parametrize("name", CAPTURES)
def test_every_file_parses_to_rows(name: str) -> None:
    capture = load_capture(name)
    for path in capture.files.index:
        assert to_records(capture.entry(path)["parser"], capture.parse(path)), f"{path} gave no records"


def test_no_file_in_data_outside_a_capture() -> None:
    stray = [p for p in DATA.rglob("*") if p.is_file() and p.relative_to(DATA).parts[0] not in CAPTURES]
    assert [p for p in stray if p.name != "README.md"] == []


def test_verify_catches_a_changed_byte_and_an_unlisted_file(tmp_path: Path) -> None:
    root = tmp_path / "kind-2022-kebe"
    shutil.copytree(DATA / "kind-2022-kebe", root)
    (root / "node" / "extra.txt").write_text("x\n")
    with pytest.raises(ManifestError, match="not in the manifest"):
        load_capture(root).verify()
    (root / "node" / "extra.txt").unlink()
    path = root / "node" / "ip-rule.txt"
    path.write_text(path.read_text().replace("103:", "104:"))
    with pytest.raises(ManifestError, match="sha256 differs"):
        load_capture(root).verify()
    assert rehash(load_capture(root)) == ["node/ip-rule.txt"]
    load_capture(root).verify()
    assert "# An independent" in (root / "manifest.yaml").read_text(), "rehash must keep comments"


def test_reconstructed_files_contain_every_recorded_excerpt() -> None:
    cap = load_capture("kind-2022-ambient-worker2")
    for grep_file, full, word in (
        ("node/ip-addr-grep-istioout.txt", "node/ip-addr.txt", "istioout"),
        ("node/ip-addr-grep-istioin.txt", "node/ip-addr.txt", "istioin"),
        ("ztunnel/ip-addr-grep-pistioout.txt", "ztunnel/ip-addr.txt", "pistioout"),
        ("ztunnel/ip-addr-grep-pistioin.txt", "ztunnel/ip-addr.txt", "pistioin"),
        ("ztunnel/iptables-save-grep-pistio.txt", "ztunnel/iptables-save.txt", "pistio"),
    ):
        grepped = [line for line in cap.text(full).splitlines() if word in line]
        assert grepped == cap.text(grep_file).splitlines(), f"{full} | grep {word} != {grep_file}"
    full_rules = set(cap.text("node/iptables-save.txt").splitlines())
    for excerpt in ("node/iptables-save-mangle-excerpt.txt", "node/iptables-save-nat-excerpt.txt"):
        assert set(cap.text(excerpt).splitlines()) <= full_rules, excerpt


def test_reconstruction_agrees_with_the_recorded_ipset_and_pods() -> None:
    cap = load_capture("kind-2022-ambient-worker2")
    members = set(cap.parse("node/ipset-list.txt").members["elem"])
    pods = cap.parse("cluster/kubectl-get-pods-ambient-worker2.txt")
    assert members == set(pods["IP"]), "every app pod on the node is in the ipset"
    table100 = cap.parse("node/ip-route-table-100.txt")
    assert members == set(table100.loc[table100["gateway"] == "192.168.126.2", "dst"])
    ztunnel = cap.parse("cluster/kubectl-get-pods-ztunnel.txt").set_index("NODE").loc["ambient-worker2", "IP"]
    assert ztunnel == "10.244.2.10"
    links = cap.parse("node/ip-d-link-istioout.txt").iloc[0]
    assert links["linkinfo"]["info_data"]["remote"] == ztunnel


def test_second_capture_has_a_pod_on_the_node_outside_the_set() -> None:
    cap = load_capture("kind-2022-kebe")
    pods = cap.parse("cluster/kubectl-get-pods-o-wide.txt")
    on_node = set(pods.loc[pods["NODE"] == "ambient-worker2", "IP"])
    members = set(cap.parse("node/ipset-list.txt").members["elem"])
    assert on_node - members == {"10.244.1.9"}
