"""The live lab: the capture's node rebuilt in network namespaces, with real connections.

Modules: :mod:`~ambientlab.lab.features` (what the kernel offers), :mod:`~ambientlab.lab.plan`
(the commands, from a capture), :mod:`~ambientlab.lab.runtime` (up, down, exec, connections),
:mod:`~ambientlab.lab.standin` (the programs run inside), :mod:`~ambientlab.lab.predict` (the
tracer's view of a lab connection), :mod:`~ambientlab.lab.nftrace` (hops from ``nft monitor
trace``), :mod:`~ambientlab.lab.breaks`, :mod:`~ambientlab.lab.status`,
:mod:`~ambientlab.lab.record` and :mod:`~ambientlab.lab.session` (captures of origin ``lab``),
:mod:`~ambientlab.lab.cli`. This package imports none of them itself, so that the stand-in runs
with ``python -m`` cleanly.
"""
