"""The live layer: network namespaces on this machine.

The lab (:mod:`ambientlab.live.lab`), the reconstruction of a node in namespaces
(:mod:`ambientlab.live.reconstruct`), capturing a real node (:mod:`ambientlab.live.collect`),
the kernel's own answers (:mod:`ambientlab.live.kernel`) and the list of system tools
(:mod:`ambientlab.live.systools`). It builds on the core and the book; only the CLI sits above it.
"""
