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


def _copy(tmp_path: Path, name: str = "kind-2022-ambient-worker2") -> Path:
    root = tmp_path / name
    shutil.copytree(DATA / name, root)
    return root


def test_a_changed_file_is_refused_where_it_is_read_by_walk_and_by_a_chapter(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from ambientlab.book.chapters import CaptureMismatch, chapter_capture
    from ambientlab.cli.main import main
    from ambientlab.core.capture import CaptureChanged
    from ambientlab.core.trace.walks import walk

    root = _copy(tmp_path)
    path = root / "node" / "iptables-save.txt"
    path.write_text(path.read_text().replace("--set-xmark 0x100/0x100", "--set-xmark 0x200/0x200"))
    with pytest.raises(CaptureChanged, match=r"node/iptables-save.txt: changed since it was recorded"):
        walk(load_capture(root), "same-node-vip")
    assert main(["walk", str(root), "same-node-vip"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "iptables-save.txt: changed since it was recorded" in err and "--rehash" in err
    monkeypatch.setenv("AMBIENTLAB_CAPTURE", str(root))
    with pytest.raises(CaptureChanged, match=r"iptables-save\.txt"):  # the chapter's first cell
        chapter_capture("kind-2022-ambient-worker2", needs=["node/iptables-save.txt"])
    rehash(load_capture(root))  # changed on purpose: the reader says so, and it is read again
    assert "0x200/0x200" in walk(load_capture(root), "same-node-vip")["matched"].str.cat()
    path.unlink()
    with pytest.raises(CaptureMismatch, match=r"lists 1 file\(s\) that are missing .*node/iptables-save.txt"):
        chapter_capture("kind-2022-ambient-worker2")


def test_an_unknown_capture_in_the_variable_is_named_with_the_ones_there_are(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ambientlab.book.chapters import CaptureMismatch, chapter_capture

    monkeypatch.setenv("AMBIENTLAB_CAPTURE", "nosuch")
    with pytest.raises(CaptureMismatch, match=r"AMBIENTLAB_CAPTURE=nosuch: there is no capture .*kind-2022-kebe"):
        chapter_capture("kind-2022-ambient-worker2")


@pytest.mark.parametrize(("path", "why"), [("/etc/hostname", "not a path relative"), ("../kind-2022-kebe/node/ip-rule.txt", r"\.\."),
                                           ("node/link.txt", "symlink")])
def test_a_manifest_cannot_name_a_file_outside_its_capture(tmp_path: Path, path: str, why: str) -> None:
    root = _copy(tmp_path, "kind-2022-kebe")
    (root / "node" / "link.txt").symlink_to("/etc/hostname")
    manifest = root / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("path: node/ip-rule.txt", f"path: {path}", 1))
    with pytest.raises(ManifestError, match=why):
        load_capture(root)


def test_a_malformed_manifest_is_named_with_its_line_and_exits_2(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from ambientlab.cli.main import main

    root = _copy(tmp_path, "kind-2022-kebe")
    manifest = root / "manifest.yaml"
    lines = manifest.read_text().splitlines(keepends=True)
    lines[7] = "  - path: [unclosed\n"
    manifest.write_text("".join(lines))
    with pytest.raises(ManifestError, match=r"manifest\.yaml:\d+: not valid YAML"):
        load_capture(root)
    assert main(["data", str(root)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML" in err and "Traceback" not in err and err.count("\n") == 1
