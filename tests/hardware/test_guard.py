"""`guarded`: the first signal ends the block, later ones cannot stop the restore (real signals, in process)."""

from __future__ import annotations

import os
import signal

import pytest

from edpilot.clock import WallClock
from edpilot.errors import DeviceError
from edpilot.hardware.base import DeviceCapabilities
from edpilot.hardware.guard import RestoreFailed, guarded, raise_if_signalled


class SlowRestoreDevice:
    """Restores in three steps and is hit by more signals in the middle of it."""

    name = "test"
    clock = WallClock()
    capabilities = DeviceCapabilities(True, None, False, False, None)

    def __init__(self, extra_signals):
        self.extra_signals = extra_signals
        self.steps: list[str] = []
        self.closed = False

    def restore(self):
        self.steps.append("min")
        for sig in self.extra_signals:
            os.kill(os.getpid(), sig)
        self.steps.append("max")
        self.steps.append("governor")

    def close(self):
        self.closed = True


@pytest.mark.parametrize(
    "first,extra",
    [
        (signal.SIGTERM, [signal.SIGTERM]),
        (signal.SIGHUP, [signal.SIGHUP, signal.SIGHUP]),
        (signal.SIGTERM, [signal.SIGHUP]),
        (signal.SIGINT, [signal.SIGINT, signal.SIGTERM]),
    ],
)
def test_more_signals_during_the_restore_are_ignored(first, extra):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    dev = SlowRestoreDevice(extra)
    expected = KeyboardInterrupt if first == signal.SIGINT else SystemExit
    with pytest.raises(expected):
        with guarded(dev):
            os.kill(os.getpid(), first)
            signal.pause()
    assert dev.steps == ["min", "max", "governor"] and dev.closed
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_signal_during_a_normal_exit_restore_is_ignored():
    dev = SlowRestoreDevice([signal.SIGTERM])
    with guarded(dev):
        pass
    assert dev.steps == ["min", "max", "governor"]


def test_keep_on_success_restores_only_on_failure():
    dev = SlowRestoreDevice([])
    with guarded(dev, keep_on_success=True):
        pass
    assert dev.steps == [] and dev.closed
    with pytest.raises(DeviceError, match="boom"), guarded(dev, keep_on_success=True):
        raise DeviceError("boom")
    assert dev.steps == ["min", "max", "governor"]


def test_a_failed_restore_says_to_run_edpilot_restore():
    class Broken(SlowRestoreDevice):
        def restore(self):
            raise DeviceError("cannot write min_freq")

    with pytest.raises(RestoreFailed, match=r"putting test back failed: cannot write min_freq.*`edpilot restore`"):
        with guarded(Broken([])):
            pass


def test_a_signal_whose_exception_was_swallowed_still_ends_the_block():
    dev = SlowRestoreDevice([])
    with pytest.raises(SystemExit) as exit_info, guarded(dev):
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            signal.pause()
        except SystemExit:
            pass  # as when the handler runs inside a finaliser, whose exceptions Python ignores
        raise_if_signalled()
    assert exit_info.value.code == 128 + signal.SIGHUP and dev.steps == ["min", "max", "governor"]


def test_a_repeated_signal_before_the_restore_raises_again():
    dev = SlowRestoreDevice([])
    with pytest.raises(SystemExit), guarded(dev):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()
        except SystemExit:
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()
    assert dev.steps == ["min", "max", "governor"]


def test_a_second_signal_after_a_lost_one_raises_for_the_first():
    dev = SlowRestoreDevice([])
    with pytest.raises(SystemExit) as exit_info, guarded(dev):
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            signal.pause()
        except SystemExit:
            pass  # lost, as inside C code that clears the error
        os.kill(os.getpid(), signal.SIGINT)
        signal.pause()
    assert exit_info.value.code == 128 + signal.SIGHUP
