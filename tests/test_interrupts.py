"""Ctrl-C and SIGTERM during a build and its teardown (ambientlab.live.interrupts), with real
signals sent to this process: the first stops the build, the rest wait for the teardown."""

from __future__ import annotations

import signal
import threading

import pytest

from ambientlab.live.interrupts import Interrupted, Interrupts, shielded


@pytest.fixture(autouse=True)
def _main_thread() -> None:
    assert threading.current_thread() is threading.main_thread()  # signal handlers are set only there


def test_the_first_signal_stops_the_build_and_later_ones_wait_for_the_teardown(capfd: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGINT)
    torn_down = []
    with Interrupts() as guard, pytest.raises(Interrupted) as stopped:
        try:
            signal.raise_signal(signal.SIGTERM)
            pytest.fail("the build went on")
        except BaseException:
            guard.teardown()
            signal.raise_signal(signal.SIGINT)  # a second one while the teardown runs: only counted
            torn_down.append(True)
            raise
    assert stopped.value.signum == signal.SIGTERM and torn_down == [True]
    assert guard.received == [signal.SIGTERM, signal.SIGINT]
    assert "SIGINT: finishing the teardown first" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before


def test_a_held_section_finishes_before_the_signal_stops_the_build() -> None:
    done = []
    with Interrupts() as guard, pytest.raises(Interrupted):
        with guard.held():
            signal.raise_signal(signal.SIGINT)
            done.append("made and recorded")
        done.append("went on")
    assert done == ["made and recorded"] and guard.tearing_down
    with Interrupts() as guard, pytest.raises(Interrupted) as stopped, guard.held():
        signal.raise_signal(signal.SIGINT)
        raise RuntimeError("its program got the Ctrl-C too")
    assert isinstance(stopped.value.__cause__, RuntimeError)  # the signal is named, the failure kept


def test_a_shielded_teardown_runs_to_its_end_then_delivers_what_it_held_back(capfd: pytest.CaptureFixture[str]) -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt) as late:
        with shielded("finishing the test's teardown first"):
            signal.raise_signal(signal.SIGINT)
            steps.append("deleted")
        steps.append("after")
    assert steps == ["deleted"] and not isinstance(late.value, Interrupted)
    assert "SIGINT: finishing the test's teardown first (it takes a moment)" in capfd.readouterr().err
    # inside a build, the held-back signal stops the build once the shielded part is done
    with Interrupts() as guard, pytest.raises(Interrupted):
        with shielded():
            signal.raise_signal(signal.SIGINT)
            steps.append("cleaned")
        steps.append("built on")
    assert steps[-1] == "cleaned" and guard.received == [signal.SIGINT]
    # and in a teardown, it is counted without a second notice
    with Interrupts(tearing_down=True) as guard:
        with shielded("inner"):
            signal.raise_signal(signal.SIGINT)
        assert guard.received == [signal.SIGINT]
    assert capfd.readouterr().err.count("SIGINT:") == 2
