"""A stop signal never cuts an uninterrupted section in two: its exception is raised as the section ends."""

from __future__ import annotations

import os
import signal
import time

import pytest

from edpilot.atomic import uninterrupted
from edpilot.cli.common import stop_on_signals


@pytest.fixture
def signals_back():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _wait_for_handler() -> None:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # the handler runs between these bytecodes
        time.sleep(0.001)


@pytest.mark.parametrize(("sig", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGHUP, SystemExit)])
def test_a_signal_inside_the_section_is_raised_when_it_ends(signals_back, sig, raised):
    done = []
    with stop_on_signals() as stop, pytest.raises(raised) as info:
        with uninterrupted():
            os.kill(os.getpid(), sig)
            _wait_for_handler()
            done.append("the rest of the section")
        done.append("after the section")
    assert done == ["the rest of the section"] and stop.signum == sig
    assert raised is KeyboardInterrupt or info.value.code == 128 + sig


def test_outside_a_section_the_signal_is_raised_at_once(signals_back):
    done = []
    with stop_on_signals(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for_handler()
        done.append("never")
    assert done == []
