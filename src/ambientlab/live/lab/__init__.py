"""The live lab: the capture's node rebuilt in network namespaces, with real connections.

Modules: :mod:`~ambientlab.live.lab.features` (what the kernel offers), :mod:`~ambientlab.live.lab.plan`
(the commands, from a capture), :mod:`~ambientlab.live.lab.runtime` (up, down, exec, connections),
:mod:`~ambientlab.live.lab.standin` (the programs run inside), :mod:`~ambientlab.core.trace.predict` (the
tracer's view of a lab connection), :mod:`~ambientlab.core.trace.nftrace` (hops from ``nft monitor
trace``), :mod:`~ambientlab.live.lab.breaks`, :mod:`~ambientlab.live.lab.status`,
:mod:`~ambientlab.live.lab.record` and :mod:`~ambientlab.live.lab.session` (captures of origin ``lab``),
:mod:`~ambientlab.cli.lab`. This package imports none of them itself, so that the stand-in runs
with ``python -m`` cleanly.
"""
