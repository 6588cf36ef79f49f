"""Captures: folders of recorded command outputs under ``data/``, each with a manifest.

A manifest (``manifest.yaml``) lists every file with the exact command, the host it ran on,
its origin and its sha256. Origins:

- ``recorded``: verbatim output from the 2022 cluster, source named;
- ``excerpt``: only part of the output was published (e.g. through ``grep``), source named;
- ``reconstructed``: completed from upstream code, upstream commit named in ``basis``;
- ``lab``: recorded on this project's live lab.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ambientlab.core.errors import decode_text
from ambientlab.core.parse import Parsed, custom_columns, parse, to_records

ORIGINS = ("recorded", "excerpt", "reconstructed", "lab")
FILE_KEYS = ("path", "command", "host", "origin", "parser", "sha256", "source", "basis", "options", "note")
DATA_DIR = Path(__file__).resolve().parents[3] / "data"


class ManifestError(ValueError):
    """A manifest that is malformed or disagrees with the files beside it."""


class CaptureChanged(ManifestError):
    """A file of a capture whose bytes are not the ones its manifest's sha256 records."""


# Files whose hash was checked in this process: absolute path -> (mtime_ns, size, sha256).
_CHECKED: dict[Path, tuple[int, int, str]] = {}


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Capture:
    """A capture folder and its manifest."""

    root: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        """Return the capture's name (its folder name)."""
        return self.root.name

    @cached_property
    def files(self) -> pd.DataFrame:
        """Return the manifest's files as a DataFrame indexed by path (command, host, origin…)."""
        rows = [{k: f.get(k, pd.NA) for k in FILE_KEYS} for f in self.manifest["files"]]
        return pd.DataFrame(rows, columns=list(FILE_KEYS)).set_index("path")

    def entry(self, path: str) -> dict[str, Any]:
        """Return the manifest entry of ``path`` (relative to the capture folder)."""
        for f in self.manifest["files"]:
            if f["path"] == path:
                return dict(f)
        raise KeyError(f"{path} is not in the manifest of {self.name}")

    def text(self, path: str) -> str:
        """Return the recorded text of ``path``, checked against the sha256 its manifest entry
        records (once per process while the file is unchanged on disk): a file changed since it
        was recorded raises :class:`CaptureChanged`, naming it. Decoded as UTF-8 with its line
        ends as they are (no newline translation: a ``\r`` stays, and lines are counted at ``\n``
        only)."""
        entry = self.entry(path)
        file = self.root / path
        data = file.read_bytes()
        stat = file.stat()
        seen = _CHECKED.get(file.resolve())
        if seen is None or seen[:2] != (stat.st_mtime_ns, stat.st_size):
            seen = (stat.st_mtime_ns, stat.st_size, hashlib.sha256(data).hexdigest())
            _CHECKED[file.resolve()] = seen
        if seen[2] != entry.get("sha256"):
            raise CaptureChanged(
                f"{file}: changed since it was recorded (its sha256 is {seen[2][:12]}…, the manifest of {self.name} "
                f"says {str(entry.get('sha256'))[:12]}…). Restore it (git checkout), or, if you changed it on "
                f"purpose, run `ambientlab data --rehash {self.name}`")
        return decode_text(data, f"{self.name}/{path}")

    def parse(self, path: str) -> Parsed:
        """Return ``path`` parsed with the parser and options its manifest entry names."""
        entry = self.entry(path)
        options = dict(entry.get("options") or {})
        if options.pop("headerless", False):
            cols = custom_columns(entry["command"])
            if entry["parser"] != "kubectl" or not cols:
                raise ManifestError(f"{self.name}/{path}: headerless needs a kubectl -ocustom-columns command")
            options["columns"] = cols
        frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
        return copy.deepcopy(_parse_once(entry["parser"], self.text(path), f"{self.name}/{path}", frozen))

    def records(self, path: str) -> list[dict[str, Any]]:
        """Return ``path`` as JSON records (iproute2's ``-j`` keys where they exist), parsed with
        the parser its manifest entry names."""
        return to_records(self.entry(path)["parser"], self.parse(path))

    def verify(self) -> None:
        """Raise ManifestError unless every entry is well-formed, every hash matches, and every
        file in the folder (except the manifest and README) is listed."""
        listed = set()
        for f in self.manifest.get("files", []):
            path = f.get("path", "?")
            missing = [k for k in ("path", "command", "host", "origin", "parser", "sha256") if k not in f]
            if missing:
                raise ManifestError(f"{self.name}/{path}: manifest entry lacks {missing}")
            extra = set(f) - set(FILE_KEYS)
            if extra:
                raise ManifestError(f"{self.name}/{path}: unknown manifest keys {sorted(extra)}")
            if f["origin"] not in ORIGINS:
                raise ManifestError(f"{self.name}/{path}: origin {f['origin']!r} not in {ORIGINS}")
            if f["origin"] in ("recorded", "excerpt") and not f.get("source"):
                raise ManifestError(f"{self.name}/{path}: a {f['origin']} file must name its source")
            if f["origin"] == "reconstructed" and not re.search(r"\b[0-9a-f]{40}\b", str(f.get("basis", ""))):
                raise ManifestError(f"{self.name}/{path}: a reconstructed file must name an upstream commit in basis")
            file = self.root / path
            if not file.is_file():
                raise ManifestError(f"{self.name}/{path}: listed but missing")
            if sha256_of(file) != f["sha256"]:
                raise ManifestError(f"{self.name}/{path}: sha256 differs from the manifest")
            listed.add(path)
        on_disk = {
            str(p.relative_to(self.root)) for p in self.root.rglob("*")
            if p.is_file() and p.name not in ("manifest.yaml", "README.md")
        }
        unlisted = sorted(on_disk - listed)
        if unlisted:
            raise ManifestError(f"{self.name}: files not in the manifest: {unlisted}")


# libyaml's safe loader where PyYAML has it (22 times faster on the demo's manifest: 2 ms, not 46 ms;
# a capture is loaded for every walk), the pure-Python one otherwise; both build the same objects.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=512)
def _parse_once(kind: str, text: str, source: str, options: tuple[tuple[str, Any], ...]) -> Parsed:
    """Return ``text`` parsed, once per distinct (parser, text, source, options): a network is built
    from a capture's files again and again (each walk, each break), and parsing was most of its
    cost. Callers get a deep copy, so nothing they change reaches the next caller."""
    return parse(kind, text, source=source, **{k: list(v) if isinstance(v, tuple) else v for k, v in options})


@functools.lru_cache(maxsize=64)
def _yaml_once(text: str) -> Any:
    """Return the YAML document ``text`` loaded, once per distinct text in this process (a capture
    is loaded for every walk and step-through); callers get a deep copy."""
    return yaml.load(text, Loader=SAFE_LOADER)


def load_capture(name: str | Path, data_dir: Path | None = None) -> Capture:
    """Return the capture named ``name`` under ``data/`` (or at the path ``name``)."""
    root = Path(name)
    if not root.is_dir():
        root = (data_dir or DATA_DIR) / str(name)
    manifest_path = root / "manifest.yaml"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no manifest.yaml in {root}")
    try:
        manifest = copy.deepcopy(_yaml_once(manifest_path.read_text()))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{manifest_path}:{mark.line + 1}" if mark else str(manifest_path)
        raise ManifestError(f"{where}: not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ManifestError(f"{manifest_path}: not valid YAML: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ManifestError(f"{manifest_path}: expected a mapping with a 'files' list")
    for entry in manifest["files"]:
        outside = _outside(root, entry.get("path") if isinstance(entry, dict) else None)
        if outside:
            raise ManifestError(f"{manifest_path}: file {entry.get('path') if isinstance(entry, dict) else entry!r} {outside}")
    return Capture(root, manifest)


def _outside(root: Path, path: object) -> str | None:
    """Return why manifest path ``path`` does not name a file inside capture folder ``root``
    (absolute, with ``..``, or through a symlink that leads out), or None if it does."""
    if not isinstance(path, str) or not path:
        return "has no path"
    if Path(path).is_absolute() or "\\" in path:
        return "is not a path relative to the capture folder"
    if ".." in Path(path).parts:
        return "leaves the capture folder (..)"
    if not (root / path).resolve().is_relative_to(root.resolve()):
        return "leads out of the capture folder (a symlink)"
    return None


def list_captures(data_dir: Path | None = None) -> list[str]:
    """Return the names of all captures (folders with a manifest) under ``data/``."""
    base = data_dir or DATA_DIR
    return sorted(p.parent.name for p in base.glob("*/manifest.yaml"))


def write_manifest(root: Path, header: str, meta: dict[str, Any], files: list[dict[str, Any]]) -> Path:
    """Write ``root/manifest.yaml``: the comment ``header`` (each line prefixed with ``# ``), the
    capture's name, ``meta``, then ``files`` with each file's sha256 computed here (the files must
    already be in ``root``). The one writer of manifests; ``ambientlab data`` checks what it writes.
    Return the manifest's path."""
    for entry in files:
        entry["sha256"] = sha256_of(root / entry["path"])
    manifest = {"capture": root.name, **meta, "files": files}
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    path = root / "manifest.yaml"
    path.write_text(comment + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=110))
    return path


def rehash(capture: Capture) -> list[str]:
    """Rewrite the ``sha256:`` line of every manifest entry to its file's current hash (the
    rest of the manifest, comments included, is left as written); return the changed paths."""
    manifest_path = capture.root / "manifest.yaml"
    out, changed, current = [], [], None
    for line in manifest_path.read_text().splitlines(keepends=True):
        found = re.match(r"^\s*- path: (\S+)\s*$", line)
        if found:
            current = found.group(1)
        found = re.match(r"^(\s*)sha256: ?(\S*)\s*$", line)
        if found and current:
            digest = sha256_of(capture.root / current)
            if found.group(2) != digest:
                changed.append(current)
            line = f"{found.group(1)}sha256: {digest}\n"
        out.append(line)
    manifest_path.write_text("".join(out))
    return changed
