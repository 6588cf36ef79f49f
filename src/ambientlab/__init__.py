"""ambientlab: how Istio ambient mode (2022 node-level design) steers traffic to ztunnel,
parsed from recorded command outputs and computed, not asserted.

The names below are imported on first use (PEP 562), so that ``import ambientlab`` stays light:
the lab's stand-in programs (``python -m ambientlab.live.lab.standin`` in every namespace, once per
connection for the client) would otherwise load pandas each time they start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {"Capture": "ambientlab.core.capture", "list_captures": "ambientlab.core.capture", "load_capture": "ambientlab.core.capture",
         "ParseError": "ambientlab.core.errors"}

if TYPE_CHECKING:
    from ambientlab.core.capture import Capture, list_captures, load_capture
    from ambientlab.core.errors import ParseError


def __getattr__(name: str) -> Any:
    """Return the public name ``name``, importing its module on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ambientlab' has no attribute {name!r}")


__all__ = ["Capture", "ParseError", "__version__", "list_captures", "load_capture"]
