"""Network namespaces owned by one run: unique prefix, commands inside them, certain teardown.

Only namespaces created through :class:`NamespaceSet` are touched; nothing is attached to the
host's interfaces.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from types import TracebackType

from ambientlab.live.interrupts import NEW_SESSION, shielded
from ambientlab.live.systools import install_line, lab_tools

# The kernel's defaults of the IPv4 sysctls routing reads. A new namespace copies the host's
# conf/all and conf/default values instead, so every namespace pins them at creation.
KERNEL_DEFAULTS = {f"net.ipv4.conf.{where}.{key}": value for where in ("all", "default")
                   for key, value in (("rp_filter", "0"), ("accept_local", "0"), ("src_valid_mark", "0"),
                                      ("route_localnet", "0"), ("send_redirects", "1"))}


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be used here (not root, or a tool is missing)."""


def netns_problem(probe: str | None = None) -> str | None:
    """Return why namespaces with iproute2/iptables/ipset cannot be used here, or None. The
    namespace it tries is named ``probe`` (default: ``alprobe`` and random hex) and is deleted
    whatever happens."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in lab_tools():
        if shutil.which(tool.name) is None:
            return f"{tool.name} not found ({install_line()})"
    probe = probe or f"alprobe{secrets.token_hex(3)}"
    made = None
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if made.returncode != 0:
            return f"cannot create a network namespace: {made.stderr.strip()}"
        return None
    finally:
        if made is None or made.returncode == 0:  # interrupted before it answered, or made: delete it
            with shielded(f"deleting the namespace {probe} first"):
                subprocess.run(["ip", "netns", "del", probe], capture_output=True, **NEW_SESSION)


class NamespaceSet:
    """Namespaces named ``PREFIX-NAME``, deleted together by :meth:`close` (or ``with``)."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"al{secrets.token_hex(3)}"
        self.names: list[str] = []

    def full(self, name: str) -> str:
        """Return the real namespace name of ``name``."""
        return f"{self.prefix}-{name}"

    def add(self, name: str, sysctls: dict[str, str] | None = None) -> str:
        """Create namespace ``name`` with loopback up and IPv6 off; return its real name."""
        real = self.full(name)
        self.names.append(real)  # first: an interrupt during `add` still leaves it to close()
        # in a session of its own: the terminal's Ctrl-C does not stop it between creating the
        # namespace's file and mounting it (close() deletes either)
        subprocess.run(["ip", "netns", "add", real], check=True, capture_output=True, **NEW_SESSION)
        self.run(name, "ip", "link", "set", "lo", "up")
        base = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
        # one sysctl process for all of them, in this order (a namespace is made for every lab host
        # and kernel test: a process per key made up a good part of building one)
        self.run(name, "sysctl", "-qw", *(f"{key}={value}" for key, value in {**base, **(sysctls or {})}.items()))
        return real

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        """Return the argv that runs ``argv`` inside namespace ``name``: ``ip -n NS …`` for ``ip``
        (``ip netns exec NS ip …`` without a new mount namespace and /sys), else ``ip netns exec``."""
        if argv[:1] == ["ip"] or argv[:1] == ("ip",):
            return ["ip", "-n", self.full(name), *argv[1:]]
        return ["ip", "netns", "exec", self.full(name), *argv]

    def run(self, name: str, *argv: str, stdin: str | None = None, check: bool = True) -> str:
        """Run ``argv`` inside namespace ``name``; return stdout (raise on failure if ``check``)."""
        cmd = self.command(name, argv)
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, cmd, done.stdout, done.stderr)
        return done.stdout

    def script(self, name: str, lines: Sequence[str]) -> None:
        """Run each command line (split like a shell would, no shell) inside namespace ``name``."""
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                self.run(name, *shlex.split(line))

    def close(self) -> None:
        """Delete every namespace this set created (idempotent; Ctrl-C waits until it is done)."""
        with shielded(f"deleting the namespaces {self.prefix}-… first"):
            for real in reversed(self.names):
                subprocess.run(["ip", "netns", "del", real], capture_output=True, **NEW_SESSION)
            self.names.clear()

    def __enter__(self) -> NamespaceSet:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
