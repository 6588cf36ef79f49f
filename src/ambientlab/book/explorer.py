"""The walk explorer: choose a packet (capture, source, destination, protocol, port, mark), take
its source out of the ipset or break one piece, and see the tracer's walk of it.

The logic is plain Python: :func:`choices` lists what can be chosen on a capture, and
:func:`explore` turns one :class:`Settings` into a :class:`Result` (the hop table and its
:class:`~ambientlab.book.story.Story`) or a :class:`Problem` whose message says what is wrong
with the input. :func:`explorer` puts ipywidgets 8 controls on top (live in JupyterLab); shown
where no kernel runs it (the published book), it is a static rendering of its current state.
"""

from __future__ import annotations

import html
import ipaddress
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import pandas as pd

from ambientlab.book.packet import design_network, devices, ending, send
from ambientlab.book.player import Story, story
from ambientlab.core.capture import Capture, load_capture
from ambientlab.core.trace import ipv4
from ambientlab.core.trace.breaks import PIECES
from ambientlab.core.trace.demo import pod_addresses
from ambientlab.core.trace.scenarios import REVIEWS_VIP
from ambientlab.core.trace.walks import NODE_LEVEL

CAPTURES = ("kind-2022-ambient-worker2", "kind-2022-ambient-worker", "inpod-1.22-ambient-worker2", "inpod-redirect-ambient-worker2")
# Pieces that only change a packet where kube-proxy's service chains exist: the captures hold them
# empty (chapter 11 walks this break on the reconstruction), so the explorer does not offer them.
NEEDS_KUBE_PROXY = ("node-nat-accept-0x100",)
OUTSIDE = "192.0.2.10"  # an example address outside the cluster (RFC 5737's documentation range): assumed
NONE = "(none)"


class Problem(ValueError):
    """Input the explorer cannot walk; its message says which value and why."""


@dataclass(frozen=True)
class Settings:
    """What the explorer walks: one packet from ``source`` (a pod's short name, ``node`` or
    ``ztunnel``) to
    ``destination`` (a label of :func:`choices`' destinations, or an address of the capture),
    with protocol, port and socket mark (text: decimal or 0x hex; empty for none), the source
    taken out of the node's ipset or not, and one piece of :data:`PIECES` removed (or none)."""

    capture: str = CAPTURES[0]
    source: str = "productpage-v1"
    destination: str = f"service reviews ({ipv4.to_text(REVIEWS_VIP)})"
    proto: str = "tcp"
    port: int = 9080
    mark: str = ""
    out_of_ipset: bool = False
    broken: str = NONE


@dataclass(frozen=True)
class Choices:
    """What can be chosen on one capture: sources, destinations (label → address), the pieces
    that can be broken, and whether the ipset toggle applies (2022 node-level captures only)."""

    sources: list[str]
    destinations: dict[str, str]
    pieces: list[str]
    ipset: bool
    hosts: list[str] = field(default_factory=list)  # the sources that send from a socket of their own (a mark applies)
    design: str = NODE_LEVEL


@dataclass(frozen=True)
class Result:
    """The walk of one :class:`Settings`: its hop table and its story (steps, step-through, hops)."""

    settings: Settings
    frame: pd.DataFrame
    story: Story


def _capture(name: str) -> Capture:
    if name not in CAPTURES:
        raise Problem(f"capture {name!r}: the explorer walks {', '.join(CAPTURES)}")
    return load_capture(name)


@lru_cache(maxsize=8)
def choices(capture_name: str) -> Choices:
    """Return what can be chosen on capture ``capture_name`` (one of :data:`CAPTURES`)."""
    capture = _capture(capture_name)
    pods = pod_addresses(capture)
    destinations = {f"pod {name} ({ip})": ip for name, ip in pods.items()}
    for other in CAPTURES:  # the same cluster's pods that other captures list (on other nodes)
        for name, ip in pod_addresses(load_capture(other)).items():
            destinations.setdefault(f"pod {name} ({ip})", ip)
    destinations[f"service reviews ({ipv4.to_text(REVIEWS_VIP)})"] = ipv4.to_text(REVIEWS_VIP)
    design, net = design_network(capture)
    inpod = design != NODE_LEVEL
    if not inpod:
        address = ipv4.to_text(net.machines["node"].host.devices["eth0"].addrs[0].local)
        destinations[f"node (its eth0, {address})"] = address
    destinations[f"outside the cluster ({OUTSIDE}, an example address: assumed)"] = OUTSIDE
    hosts = [m for m in ("node", "ztunnel") if m in net.machines and (m == "node" or not inpod)]
    return Choices(sources=[*(p for p in pods if p in net.entries or p in net.machines), *hosts],
                   destinations=destinations, ipset=not inpod,
                   pieces=[NONE] if inpod else [NONE, *(p for p in PIECES if p not in NEEDS_KUBE_PROXY)],
                   hosts=[m for m in net.machines if m in hosts or m in pods], design=design)


def pod_names_of(capture_name: str) -> list[str]:
    """Return the short names of the pods that capture ``capture_name`` lists."""
    return list(pod_addresses(_capture(capture_name)))


def _mark(text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise Problem(f"mark {text!r}: write a number, in decimal or as 0x hex (e.g. 0x100)") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise Problem(f"mark {text!r}: a socket mark has 32 bits (0 to 0xffffffff)")
    return value


def _destination(settings: Settings, known: dict[str, str]) -> str:
    if settings.destination in known:
        return known[settings.destination]
    text = settings.destination.strip()
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        raise Problem(f"destination {text!r}: not an IPv4 address, nor one of the listed destinations") from None
    if text not in known.values():
        raise Problem(f"destination {text}: no pod, service or node of the recorded captures has this address; "
                      f"pick one from the list (its last entry is an address outside the cluster)")
    return text


def explore(settings: Settings) -> Result:
    """Return the tracer's walk of the packet ``settings`` describe (the first packet of
    :func:`ambientlab.book.send`), or raise :class:`Problem` naming the input that cannot be
    walked: an unknown capture, source or piece, a port outside 1-65535, a mark that is not a
    32-bit number, an address no pod, service or node of the capture has."""
    known = choices(settings.capture)
    if settings.source not in known.sources:
        raise Problem(f"source {settings.source!r}: one of {', '.join(known.sources)}")
    if settings.proto not in ("tcp", "udp"):
        raise Problem(f"protocol {settings.proto!r}: tcp or udp")
    if not isinstance(settings.port, int) or not 1 <= settings.port <= 65535:
        raise Problem(f"port {settings.port}: a port is a number from 1 to 65535")
    if settings.broken not in known.pieces:
        raise Problem(f"piece {settings.broken!r}: on this capture ({known.design}) one of {', '.join(known.pieces)}")
    if settings.out_of_ipset and not known.ipset:
        raise Problem("out of the ipset: an in-pod capture has no ipset of mesh pods (a pod is in the mesh when "
                      "istio-cni wrote rules into its own namespace)")
    if settings.out_of_ipset and settings.source not in pod_names_of(settings.capture):
        raise Problem(f"out of the ipset: the ipset lists pods' addresses; {settings.source} is not a pod")
    dst = _destination(settings, known.destinations)
    mark = _mark(settings.mark)
    if mark and settings.source not in known.hosts:
        raise Problem(f"mark {settings.mark}: a socket mark is set by a sending socket in the tracer's hosts "
                      f"({', '.join(known.hosts)}); {settings.source}'s own namespace is not modelled on this capture, "
                      "and a mark never crosses a veth")
    capture = _capture(settings.capture)
    without = [] if settings.broken == NONE else [settings.broken]
    if settings.out_of_ipset:
        without.append(f"ipset:{settings.source}")
    frame = send(capture, settings.source, dst, settings.port, proto=settings.proto, mark=mark, without=without)
    return Result(settings, frame, story(frame, 1))


def render(settings: Settings) -> str:
    """Return the HTML of the walk ``settings`` describe: its story (steps, step-through and the
    folded hop table), or the :class:`Problem`'s message."""
    try:
        result = explore(settings)
    except Problem as problem:
        return f'<p class="al-problem"><b>Cannot walk this packet:</b> {html.escape(str(problem))}</p>'
    return result.story._repr_html_()


def describe(settings: Settings) -> str:
    """Return ``settings`` as one line of text."""
    extra = [f"mark {settings.mark}" if settings.mark.strip() else "",
             "source out of the ipset" if settings.out_of_ipset else "",
             f"without {settings.broken}" if settings.broken != NONE else ""]
    return (f"{settings.capture}: {settings.proto.upper()} from {settings.source} to {settings.destination} "
            f"port {settings.port}" + "".join(f", {e}" for e in extra if e))


class Explorer:
    """The explorer's controls and output (ipywidgets 8): live in JupyterLab, a static rendering
    of its current :class:`Settings` where no kernel runs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._box: Any = None
        self._shown: tuple[Settings, str] | None = None  # the last settings rendered, and their HTML

    def _render(self) -> str:
        """Return :func:`render` of the current settings, walked and drawn once however many times
        they are shown (the widget's output and the static HTML both show the first state)."""
        if self._shown is None or self._shown[0] != self.settings:
            self._shown = (self.settings, render(self.settings))
        return self._shown[1]

    def _widgets(self) -> Any:
        import ipywidgets as w

        known = choices(self.settings.capture)
        style = {"description_width": "8em"}
        layout = w.Layout(width="34em")
        capture = w.Dropdown(options=list(CAPTURES), value=self.settings.capture, description="capture", style=style,
                             layout=layout)
        source = w.Dropdown(options=known.sources, value=self.settings.source, description="source", style=style,
                            layout=layout)
        destination = w.Combobox(options=list(known.destinations), value=self.settings.destination,
                                 description="destination", placeholder="a listed one, or an address", style=style,
                                 layout=layout, ensure_option=False)
        proto = w.ToggleButtons(options=["tcp", "udp"], value=self.settings.proto, description="protocol", style=style)
        port = w.IntText(value=self.settings.port, description="port", style=style)
        mark = w.Text(value=self.settings.mark, description="socket mark", placeholder="e.g. 0x100 (empty: none)",
                      style=style)
        ipset = w.Checkbox(value=self.settings.out_of_ipset, description="take the source out of the ipset",
                           indent=False)
        broken = w.Dropdown(options=known.pieces, value=self.settings.broken, description="break", style=style,
                            layout=w.Layout(width="60em"))
        out = w.Output()  # its outputs are rendered as the notebook's are: the step-through's script runs

        def show() -> None:
            out.outputs = ({"output_type": "display_data", "metadata": {},
                            "data": {"text/html": self._render(), "text/plain": describe(self.settings)}},)

        show()
        controls = {"capture": capture, "source": source, "destination": destination, "proto": proto, "port": port,
                    "mark": mark, "out_of_ipset": ipset, "broken": broken}

        def on_capture(change: dict[str, Any]) -> None:
            fresh = choices(change["new"])
            source.options, destination.options, broken.options = fresh.sources, list(fresh.destinations), fresh.pieces
            ipset.disabled = not fresh.ipset

        def update(_: Any = None) -> None:
            values = {name: c.value for name, c in controls.items()}
            self.settings = replace(self.settings, **values)
            show()

        capture.observe(on_capture, names="value")
        for c in controls.values():
            c.observe(update, names="value")
        ipset.disabled = not known.ipset
        return w.VBox([w.HTML("<b>Walk explorer</b>: change any value and the tracer walks the packet again."),
                       capture, source, destination, proto, port, mark, ipset, broken, out])

    def outcomes(self, variations: dict[str, dict[str, Any]]) -> pd.DataFrame:
        """Return where the packet ends for each variation of this explorer's settings (label →
        the values that change), with its number of steps, the devices it crosses
        (:func:`ambientlab.book.devices`) and its last step; a variation that cannot be walked shows
        the explorer's message instead."""
        rows = []
        for label, changes in variations.items():
            settings = replace(self.settings, **changes)
            try:
                result = explore(settings)
            except Problem as problem:
                rows.append({"variation": label, "ends": "cannot be walked", "steps": 0, "devices": "",
                             "last step": str(problem)})
                continue
            rows.append({"variation": label, "ends": ending(result.frame), "steps": len(result.story.steps),
                         "devices": " → ".join(devices(result.frame, hosts=True)),
                         "last step": result.story.steps[-1].text()})
        return pd.DataFrame(rows).set_index("variation")

    def _repr_html_(self) -> str:
        known = choices(self.settings.capture) if self.settings.capture in CAPTURES else None
        values = [("capture", self.settings.capture, list(CAPTURES)),
                  ("source", self.settings.source, known.sources if known else []),
                  ("destination", self.settings.destination, list(known.destinations) if known else []),
                  ("protocol", self.settings.proto, ["tcp", "udp"]), ("port", str(self.settings.port), []),
                  ("socket mark", self.settings.mark or "(none)", []),
                  ("take the source out of the ipset", "yes" if self.settings.out_of_ipset else "no", ["no", "yes"]),
                  ("break", self.settings.broken, known.pieces if known else [])]
        rows = "".join(f"<tr><th>{html.escape(name)}</th><td><code>{html.escape(value)}</code></td>"
                       f"<td>{'; '.join(map(html.escape, options)) if options else 'typed: a number'}</td></tr>"
                       for name, value, options in values)
        return (f'<div class="al-explorer"><p><b>Walk explorer</b>, in its first state. It is live in JupyterLab: run '
                f"this notebook there (<code>make lab</code>) to change any of these values, and the tracer walks the "
                f"packet again. A destination may also be typed as an address. The captures hold the rules as "
                f"recorded, so kube-proxy's service chains are empty in them: a packet to the service's address that "
                f"no rule sends to ztunnel is walked without kube-proxy's translation (chapter 10 walks a "
                f"reconstruction of those chains).</p><table><tr><th>control</th><th>value</th><th>the choices</th></tr>"
                f"{rows}</table>{self._render()}</div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if self._box is None:
            self._box = self._widgets()
        bundle = self._box._repr_mimebundle_(include=include, exclude=exclude) or {}
        bundle = dict(bundle)
        bundle["text/html"] = self._repr_html_()
        bundle["text/plain"] = f"Walk explorer ({describe(self.settings)}): live in JupyterLab"
        return bundle


def explorer(capture: Capture | str | None = None, **settings: Any) -> Explorer:
    """Return a walk explorer on ``capture`` (a name of :data:`CAPTURES`, the book's demo capture
    by default), starting from :class:`Settings` ``settings``: ipywidgets controls in JupyterLab;
    in the published book, a static rendering of that first state."""
    name = capture.name if isinstance(capture, Capture) else capture or CAPTURES[0]
    return Explorer(Settings(capture=name, **settings))
