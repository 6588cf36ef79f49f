"""``ambientlab check-env``: is this machine ready for the workshop? One ``[ OK ]`` or ``[FAIL]``
line per thing checked: Python, every pinned package, JupyterLab, the system tools of
:mod:`ambientlab.live.systools` (``[warn]`` for those only the tests need), the kernel features the live
lab needs, and root."""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[3] / "requirements.txt"


@dataclass(frozen=True)
class Check:
    """One line of the report: what, whether it passed, and what was found or what to do."""

    what: str
    ok: bool
    detail: str
    required: bool = True

    def line(self) -> str:
        """Return the report line: ``[ OK ] what detail`` or ``[FAIL] what: detail``
        (``[warn]`` for a failed check that is not required)."""
        tag = " OK " if self.ok else ("FAIL" if self.required else "warn")
        if not self.detail:
            return f"[{tag}] {self.what}"
        return f"[{tag}] {self.what}" + (f" {self.detail}" if self.ok else f": {self.detail}")


def pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """Return {distribution name: pinned version} of ``name==version`` lines in ``path``."""
    out = {}
    for line in path.read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if found:
            out[found.group(1)] = found.group(2)
    return out


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_checks() -> list[Check]:
    """Return the checks of the Python side: the interpreter and every pinned package."""
    version = ".".join(map(str, sys.version_info[:3]))
    checks = [Check("python", sys.version_info[:2] >= (3, 11), version if sys.version_info[:2] >= (3, 11)
                    else f"{version} found, 3.11 or newer needed")]
    installed = {_normal(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}
    for name, wanted in pins().items():
        have = installed.get(_normal(name))
        if have == wanted:
            checks.append(Check(name, True, have))
        else:
            found = "not installed" if have is None else f"{have} installed"
            checks.append(Check(name, False, f"{wanted} pinned, {found} (run `make test` or "
                                             "`pip install -r requirements.txt` in the venv)"))
    lab = shutil.which("jupyter-lab", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    checks.append(Check("jupyterlab (command)", lab is not None, lab or "jupyter-lab not found on PATH or beside python"))
    return checks


def lab_checks() -> list[Check]:
    """Return the checks of the live lab: root, the tools, and the kernel features (probed in a
    throwaway namespace)."""
    from ambientlab.live import systools
    from ambientlab.live.lab.features import VERSIONS, probe_features, tool_version

    root = os.geteuid() == 0
    checks = [Check("root", root, "(uid 0)" if root else "the live lab needs root: run with sudo")]
    versions = {argv[0]: argv for argv in VERSIONS.values()}
    for tool in (t for t in systools.TOOLS if t.kind == systools.NEEDED):
        found = tool.find()
        detail = (tool_version(versions[tool.name]) if tool.name in versions else None) or found
        checks.append(Check(tool.name, found is not None,
                            detail or f"not found (apt-get install {tool.package}): {tool.used_for}", required=tool.lab))
    for feature in probe_features():
        checks.append(Check(f"kernel: {feature.name}", feature.ok, "" if feature.ok else feature.hint, feature.required))
    return checks


def report(lab: bool = True) -> tuple[list[str], bool]:
    """Return (the report's lines, True when every required check passed)."""
    checks = python_checks() + (lab_checks() if lab else [])
    return [c.line() for c in checks], all(c.ok for c in checks if c.required)
