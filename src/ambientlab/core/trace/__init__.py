"""The packet tracer: Linux policy routing and netfilter replayed on recorded data."""

from ambientlab.core.trace.build import host_from_capture, host_from_texts
from ambientlab.core.trace.fib import Errno, Fib, Flow, UnsupportedRoute
from ambientlab.core.trace.host import Host

__all__ = ["Errno", "Fib", "Flow", "Host", "UnsupportedRoute", "host_from_capture", "host_from_texts"]
