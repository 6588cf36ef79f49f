"""What this machine's kernel and tools offer the live lab, probed in a throwaway namespace."""

from __future__ import annotations

import platform
import secrets
import shutil
import subprocess
from dataclasses import dataclass

from ambientlab.live.netns import NamespaceSet, netns_problem


@dataclass(frozen=True)
class Feature:
    """One probed feature: whether it works, whether the lab needs it, and how to get it."""

    name: str
    ok: bool
    required: bool
    hint: str


# (name, required, commands run in the probe namespace, hint when missing)
PROBES: tuple[tuple[str, bool, tuple[tuple[str, ...], ...], str], ...] = (
    ("veth", True, (("ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1"),),
     "kernel option CONFIG_VETH (modprobe veth)"),
    ("geneve", False, (("ip", "link", "add", "g0", "type", "geneve", "id", "7", "remote", "10.9.9.9"),),
     "CONFIG_GENEVE (modprobe geneve; Debian: linux-image with modules); the lab falls back to vxlan"),
    ("vxlan", False, (("ip", "link", "add", "x0", "type", "vxlan", "id", "7", "remote", "10.9.9.9", "dstport", "6081"),),
     "CONFIG_VXLAN (modprobe vxlan); without geneve or vxlan the lab uses veth pairs"),
    ("ipset hash:ip", True, (("ipset", "create", "probe", "hash:ip"),),
     "CONFIG_IP_SET_HASH_IP (modprobe ip_set_hash_ip) and the ipset tool (apt-get install ipset)"),
    ("policy routing (fwmark/mask, goto)", True,
     (("ip", "rule", "add", "priority", "100", "fwmark", "0x200/0x200", "goto", "32766"),),
     "CONFIG_IP_MULTIPLE_TABLES"),
    ("iptables MARK, CONNMARK, set match", True,
     (("iptables", "-t", "mangle", "-A", "PREROUTING", "-m", "set", "--match-set", "probe", "src", "-j", "MARK",
       "--set-mark", "0x100/0x100"),
      ("iptables", "-t", "mangle", "-A", "FORWARD", "-m", "mark", "--mark", "0x210/0x210", "-j", "CONNMARK",
       "--save-mark", "--nfmask", "0x210", "--ctmask", "0x210")),
     "CONFIG_NETFILTER_XT_MARK, _CONNMARK, _SET (modprobe xt_mark xt_connmark xt_set) and iptables"),
    ("TPROXY", True,
     (("iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-j", "TPROXY", "--tproxy-mark", "0x400/0xfff",
       "--on-port", "15001", "--on-ip", "127.0.0.1"),),
     "CONFIG_NETFILTER_XT_TARGET_TPROXY (modprobe xt_TPROXY nf_tproxy_ipv4)"),
    ("bridge", False, (("ip", "link", "add", "b0", "type", "bridge"),),
     "CONFIG_BRIDGE (modprobe bridge); a two-node lab (`lab up --nodes 2`) joins its nodes with a bridge"),
    ("nft monitor trace (TRACE target)", False,
     (("iptables", "-t", "raw", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "TRACE"),
      ("nft", "list", "ruleset")),
     "iptables with the nf_tables backend and the nft tool (apt-get install nftables); `lab trace` needs it"),
)


def probe_features(prefix: str | None = None) -> list[Feature]:
    """Return every feature of :data:`PROBES`, tried in the namespace ``PREFIX-probe`` (default
    prefix: ``alprobe`` and random hex), which is deleted afterwards, whatever happens.

    Without root or namespaces, every feature is reported missing with the reason.
    """
    prefix = prefix or f"alprobe{secrets.token_hex(3)}"
    problem = netns_problem(f"{prefix}-probe")
    if problem:
        return [Feature(name, False, required, problem) for name, required, _, _ in PROBES]
    found = []
    with NamespaceSet(prefix) as ns:
        ns.add("probe")
        for name, required, commands, hint in PROBES:
            ok = all(shutil.which(c[0]) and subprocess.run(["ip", "netns", "exec", ns.full("probe"), *c],
                                                            capture_output=True).returncode == 0
                     for c in commands)
            found.append(Feature(name, ok, required, hint))
    return found


def pick_tunnel(features: list[Feature]) -> str:
    """Return the most faithful tunnel type available: geneve, else vxlan, else veth."""
    have = {f.name for f in features if f.ok}
    return "geneve" if "geneve" in have else "vxlan" if "vxlan" in have else "veth"


def missing_required(features: list[Feature]) -> list[Feature]:
    """Return the required features that are missing."""
    return [f for f in features if f.required and not f.ok]


# The kernel and the tools that print the lab's outputs: {name: the command that prints its version}.
VERSIONS = {"kernel": ["uname", "-r"], "iproute2": ["ip", "-V"], "iptables": ["iptables", "-V"],
            "ipset": ["ipset", "-v"], "nft": ["nft", "-v"]}


def tool_version(argv: list[str]) -> str | None:
    """Return the first line a version command prints, or None if the tool is not installed."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return None


def tool_versions() -> dict[str, str]:
    """Return {kernel, iproute2, iptables, ipset, nft, python: version} (``not installed`` if missing)."""
    out = {name: tool_version(argv) or "not installed" for name, argv in VERSIONS.items()}
    out["python"] = platform.python_version()
    return out
