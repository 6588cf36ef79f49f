"""The live lab: the capture's node rebuilt in network namespaces, with real connections.

Modules: :mod:`~ambientlab.lab.plan` (commands from a capture), :mod:`~ambientlab.lab.runtime`
(up, down, exec, connections), :mod:`~ambientlab.lab.standin` (the programs run inside),
:mod:`~ambientlab.lab.nftrace` (hops from ``nft monitor trace``), :mod:`~ambientlab.lab.breaks`
and :mod:`~ambientlab.lab.record`. This package imports none of them itself, so that the
stand-in runs with ``python -m`` cleanly.
"""
