"""The packet tracer: Linux policy routing and netfilter replayed on recorded data."""

from ambientlab.trace.build import host_from_capture, host_from_texts
from ambientlab.trace.fib import Errno, Fib, Flow, UnsupportedRoute
from ambientlab.trace.host import Host

__all__ = ["Errno", "Fib", "Flow", "Host", "UnsupportedRoute", "host_from_capture", "host_from_texts"]
