"""Ctrl-C (SIGINT) and SIGTERM while something is built that must be taken down again.

A build runs inside :class:`Interrupts`: the first signal raises :class:`Interrupted` (at once,
or at the end of a :meth:`Interrupts.held` section that creates something and records it), and
from then on, the teardown that follows cannot be interrupted: later signals are only counted,
and the terminal is told that the teardown is finishing. :func:`shielded` does the same for a
teardown on its own (``lab down``), and delivers the signals it held back once it is done.

The programs a shielded section starts get their own session (:data:`NEW_SESSION`), so the
terminal's Ctrl-C, which reaches the whole foreground process group, does not kill them halfway
either. Signal handlers can only be set in the main thread; elsewhere these guards do nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# subprocess.run(..., **NEW_SESSION): the program is out of the terminal's process group.
NEW_SESSION: dict[str, Any] = {"start_new_session": True}


class Interrupted(KeyboardInterrupt):
    """A build stopped by SIGINT or SIGTERM (``signum``); what it built has been taken down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupts:
    """SIGINT and SIGTERM during a build and its teardown (a context manager; see the module).

    ``tearing_down=True`` starts in teardown mode: every signal is only counted."""

    def __init__(self, tearing_down: bool = False, notice: str = "finishing the teardown first") -> None:
        self.received: list[int] = []
        self.tearing_down = tearing_down
        self.notice = notice
        self._held = 0
        self._pending: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.receive(signum)

    def receive(self, signum: int, quiet: bool = False) -> None:
        """Take signal ``signum`` as the handler does: count it, and raise :class:`Interrupted`
        if it is the first and nothing holds it back. ``quiet``: no notice on the terminal (a
        signal an inner teardown held back and already noticed)."""
        self.received.append(signum)
        if self.tearing_down:
            if not quiet:  # os.write, not print: the interrupted code may be inside a write to stderr
                os.write(2, f"\n{signal.Signals(signum).name}: {self.notice} (it takes a moment)\n".encode())
            return
        if self._held:
            self._pending = self._pending or signum
            return
        self.tearing_down = True
        raise Interrupted(signum)

    def teardown(self) -> None:
        """From now on signals are only counted (call it before a teardown starts)."""
        self.tearing_down = True

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold signals back while the block creates something and records it; a signal that
        came meanwhile raises :class:`Interrupted` when the block ends (from the block's own
        error if it failed: its programs got the terminal's Ctrl-C too)."""
        self._held += 1
        try:
            yield
        except BaseException as err:
            self._held -= 1
            if self._interrupting():  # the signal reached the block's programs too, and they failed
                raise Interrupted(self._pending or signal.SIGINT) from err
            raise
        self._held -= 1
        if self._interrupting():
            raise Interrupted(self._pending or signal.SIGINT)

    def _interrupting(self) -> bool:
        """Switch to the teardown and return True if a held-back signal must stop the build now."""
        if self._pending is None or self._held or self.tearing_down:
            return False
        self.tearing_down = True
        return True


@contextlib.contextmanager
def shielded(notice: str = "finishing the teardown first") -> Iterator[Interrupts]:
    """Run the block (a teardown) to its end whatever signals come; then deliver each signal it
    held back once, to whatever handled it before (an outer build's handler only counts it; by
    default Ctrl-C then raises KeyboardInterrupt and SIGTERM ends the process). Not re-delivered
    when the block raised."""
    guard = Interrupts(tearing_down=True, notice=notice)
    with guard:
        yield guard
        before = dict(guard._old)
    for signum in dict.fromkeys(guard.received):
        outer = getattr(before.get(signum), "__self__", None)
        if isinstance(outer, Interrupts):
            outer.receive(signum, quiet=True)
        else:
            signal.raise_signal(signum)
