"""ambientlab: how Istio ambient mode (2022 node-level design) steers traffic to ztunnel,
parsed from recorded command outputs and computed, not asserted."""

from __future__ import annotations

__version__ = "0.1.0"

from ambientlab.capture import Capture, list_captures, load_capture
from ambientlab.chapters import CaptureMismatch, chapter_capture
from ambientlab.errors import ParseError

__all__ = ["Capture", "CaptureMismatch", "ParseError", "__version__", "chapter_capture", "list_captures", "load_capture"]
