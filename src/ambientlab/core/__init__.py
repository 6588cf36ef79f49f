"""The core layer: reading recorded outputs and computing packet paths.

- :mod:`ambientlab.core.parse`: lossless, strict parsers of ``ip``, ``iptables-save``, ``ipset``,
  ``sysctl``, ``kubectl`` and trace outputs into DataFrames;
- :mod:`ambientlab.core.trace`: the packet tracer (policy routing, netfilter, the tunnels);
- :mod:`ambientlab.core.capture`: a capture folder and its manifest.

Nothing here imports the book, the live lab or the CLI (``tests/test_layers.py``).
"""
