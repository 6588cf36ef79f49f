"""The system tools that ambientlab and its tests run, each with the Debian package that has it:
the project's one list of them.

Everything else follows this list: the README's install line (a test compares them), ``make
tools`` (which ``make test`` and ``.ci/run`` call first), ``ambientlab check-env`` and the live lab's
checks. ``tests/test_systools.py`` scans ``src/`` and ``tests/`` for the tools they run, and the
test session records every program it starts; both fail on a tool that is not listed here.

This module imports nothing outside the standard library, so that a fresh machine's Python can
run it before anything is installed::

    python3 src/ambientlab/live/systools.py packages   # the Debian packages to install, on one line
    python3 src/ambientlab/live/systools.py missing    # those whose tools are not on PATH
    python3 src/ambientlab/live/systools.py install    # apt-get install the missing ones (as root)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

# What a tool is needed for. Only NEEDED tools are installed by `make tools`; ESSENTIAL ones are
# on every Debian system; YOURS are run against your own cluster by `ambientlab capture` and are
# replaced by fakes in the tests (tests/fakes/), so the tests never need them; VENV ones are
# commands of Python packages, pinned in requirements.txt (the package column is PyPI's name).
NEEDED = "needed"
ESSENTIAL = "essential"
YOURS = "yours"
VENV = "venv"


@dataclass(frozen=True)
class Tool:
    """One system tool: its name (a command on PATH), the Debian package that has it, what needs it.
    A package with no command (a font) names the file it installs instead, in ``path``."""

    name: str
    package: str
    kind: str
    used_for: str
    lab: bool = False  # the live lab cannot start without it (check-env: FAIL, not warn)
    path: str = ""

    def find(self, search: str | None = None) -> str | None:
        """Return where the tool is (its file, or its command on ``search``, default $PATH plus
        the sbin folders), or None when it is missing."""
        if self.path:
            return self.path if os.path.exists(self.path) else None
        search = search or os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
        return shutil.which(self.name, path=search)


TOOLS: tuple[Tool, ...] = (
    Tool("ip", "iproute2", NEEDED, "network namespaces, links, addresses, rules and routes (lab, kernel tests)", lab=True),
    Tool("iptables", "iptables", NEEDED, "the rules of the lab and of the kernel tests (nf_tables backend)", lab=True),
    Tool("iptables-save", "iptables", NEEDED, "printing a namespace's rules (reconstruction, lab status)", lab=True),
    Tool("iptables-restore", "iptables", NEEDED, "loading a namespace's rules (reconstruction, lab)", lab=True),
    Tool("ip6tables-save", "iptables", NEEDED, "the kernel tests: an IPv6 dump to parse and render back"),
    Tool("ip6tables-restore", "iptables", NEEDED, "the kernel tests: loading IPv6 rules (icmp6, hl)"),
    Tool("ipset", "ipset", NEEDED, "the set of mesh pods (ztunnel-pods-ips)", lab=True),
    Tool("nft", "nftables", NEEDED, "`nft monitor trace`: the kernel's own trace of a packet (lab trace)", lab=True),
    Tool("conntrack", "conntrack", NEEDED, "reading the kernel's conntrack table (tracer tests)"),
    Tool("tcpdump", "tcpdump", NEEDED, "capturing the HBONE underlay (lab sniff)"),
    Tool("sysctl", "procps", NEEDED, "a namespace's IPv4 settings (rp_filter, src_valid_mark, ...)", lab=True),
    Tool("chromium", "chromium", NEEDED, "the browser tests of the built book (headless)"),
    Tool("Noto Sans CJK", "fonts-noto-cjk", NEEDED, "Chinese text: the figures' bilingual labels, and the zh edition in the browser tests",
         path="/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Tool("git", "git", NEEDED, "make publish (ghp-import) and the benchmarks' commit id"),
    Tool("make", "make", NEEDED, "the README's commands"),
    Tool("sh", "dash", ESSENTIAL, "a command with its error output kept in order (`ip -batch … 2>&1`: lab, kernel tests)"),
    Tool("uname", "coreutils", ESSENTIAL, "the kernel's version, into a capture's manifest"),
    Tool("apt-get", "apt", ESSENTIAL, "`make tools`: installing the needed packages"),
    Tool("docker", "docker.io", YOURS, "`ambientlab capture --kind-node`: docker exec into a kind node"),
    Tool("kubectl", "kubectl", YOURS, "`ambientlab capture`: the listings, istiod's version, kubectl exec; --kubectl-debug's pod"),
    Tool("uv", "uv", VENV, "make: installing the pinned stack into .venv"),
    Tool("sphinx-intl", "sphinx-intl", VENV, "make catalogs (book/build.py): new English messages into the Chinese catalogs"),
    Tool("jupyter-lab", "jupyterlab", VENV, "make lab"),
    Tool("ruff", "ruff", VENV, "make test: lint"),
    Tool("codespell", "codespell", VENV, "the spelling test of the prose"),
    Tool("ghp-import", "ghp-import", VENV, "make publish: the built book onto a gh-pages branch"),
)

BY_NAME = {tool.name: tool for tool in TOOLS}


def packages(kind: str = NEEDED) -> list[str]:
    """Return the Debian packages of the tools of ``kind``, in list order, each once."""
    return list(dict.fromkeys(t.package for t in TOOLS if t.kind == kind))


def install_line() -> str:
    """Return the README's install command for the needed tools."""
    return "apt-get install -y " + " ".join(packages())


def lab_tools() -> list[Tool]:
    """Return the tools the live lab cannot start without."""
    return [t for t in TOOLS if t.lab]


def missing(path: str | None = None) -> list[Tool]:
    """Return the needed tools that are not on ``path`` (default: $PATH plus the sbin folders)."""
    return [t for t in TOOLS if t.kind == NEEDED and t.find(path) is None]


def install() -> int:
    """Install the packages of the missing needed tools with apt-get when root; otherwise print
    the command to run. Return the exit code (0 when nothing is missing or all installed)."""
    wanted = list(dict.fromkeys(t.package for t in missing()))
    if not wanted:
        print("system tools: all present")
        return 0
    command = ["apt-get", "install", "-y", "-q", *wanted]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"system tools missing: run  sudo {' '.join(command)}", file=sys.stderr)
        return 1
    print(f"system tools: installing {' '.join(wanted)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-q"], command):
        if subprocess.run(step, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            print(f"system tools: `{' '.join(step)}` failed", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``python3 src/ambientlab/live/systools.py packages|missing|install``."""
    what = argv[0] if argv else "packages"
    if what == "packages":
        print(" ".join(packages()))
    elif what == "missing":
        print(" ".join(dict.fromkeys(t.package for t in missing())))
    elif what == "install":
        return install()
    else:
        print("usage: systools.py packages|missing|install", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
