"""``tcpdump`` on the underlay of a two-node lab (the peer's port to the second node); the pcap
is read by :mod:`ambientlab.core.parse.wire`."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

from ambientlab.live.lab.plan import PEER
from ambientlab.live.lab.runtime import Lab, LabError
from ambientlab.live.systools import BY_NAME

T = TypeVar("T")


def sniff(lab: Lab, action: Callable[[], T], device: str = "eth1", host: str = PEER) -> tuple[T, bytes]:
    """Run ``action`` while ``tcpdump`` captures on ``device`` of lab host ``host`` (by default
    the peer's port to the second node); return (its result, the pcap bytes)."""
    if shutil.which("tcpdump") is None:
        raise LabError(f"sniffing the underlay needs tcpdump (apt-get install {BY_NAME['tcpdump'].package})")
    path = lab.folder / f"sniff-{device}.pcap"
    proc = subprocess.Popen(["ip", "netns", "exec", lab.full(host), "tcpdump", "-i", device, "--immediate-mode", "-U", "-n", "-s", "0",
                             "-w", str(path), "tcp or udp"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "tcpdump: listening on eth1, …": the capture has started
        if "listening" not in line:
            raise LabError(f"tcpdump did not start: {line.strip()}")
        result = action()
        time.sleep(0.3)  # the last segments (FIN, ACK) still on their way
    finally:
        proc.terminate()
        proc.communicate(timeout=5)  # also closes its stderr pipe
    data = path.read_bytes()
    path.unlink()
    return result, data
