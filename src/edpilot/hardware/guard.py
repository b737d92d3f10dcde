"""Always undo: restore a device on normal exit, exceptions, Ctrl-C, SIGTERM and SIGHUP — even under more signals."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from types import FrameType

from edpilot.atomic import held
from edpilot.errors import DeviceError, EdpilotError
from edpilot.hardware.base import Device

log = logging.getLogger(__name__)

GUARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class RestoreFailed(DeviceError):
    """Putting a device back failed; its saved state stays for `edpilot restore`."""


class _Shield:
    """Turns each signal into an exception until the restore starts; from then on signals are ignored.

    A raise can be lost (a handler that runs inside a finaliser has its exception swallowed), so the signal is
    also remembered: `raise_if_signalled()` raises it again, and a repeated signal raises again.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.restoring = False
        self.ignored: list[int] = []

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.restoring:
            self.ignored.append(signum)
            return
        if self.signum is None:  # the first signal is the one that stopped the block, also when its raise was lost
            self.signum = signum
        exc = exception_for(self.signum)
        if not held(exc):  # inside an uninterrupted section it is raised as the section ends
            raise exc


def exception_for(signum: int) -> BaseException:
    """What a stop signal raises: KeyboardInterrupt for SIGINT, else SystemExit(128 + N)."""
    return KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(128 + signum)


_shields: list[_Shield] = []


def raise_if_signalled() -> None:
    """Raise (again) for a signal the innermost `guarded` block received; loops that wait call this."""
    if _shields and _shields[-1].signum is not None:
        raise exception_for(_shields[-1].signum)


@contextlib.contextmanager
def guarded(device: Device, *, keep_on_success: bool = False) -> Iterator[Device]:
    """Yield `device`; afterwards restore it (unless the block succeeded and `keep_on_success`) and close it.

    SIGTERM and SIGHUP become SystemExit and SIGINT KeyboardInterrupt, so that `finally` blocks run; once the
    restore starts, further SIGINT/SIGTERM/SIGHUP are ignored until the device is restored and closed. SIGKILL
    cannot be caught: its saved state file is left for `edpilot restore`.
    """
    shield = _Shield()
    previous = {}
    for sig in GUARDED_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, shield.handle)
        except ValueError:  # not the main thread: leave signals alone
            break
    _shields.append(shield)
    succeeded = False
    try:
        yield device
        succeeded = shield.signum is None
    finally:
        shield.restoring = True
        try:
            if not (succeeded and keep_on_success):
                _restore(device)
        finally:
            _shields.remove(shield)
            device.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if shield.ignored:
                log.info("ignored signals %s while putting %s back", shield.ignored, device.name)


def _restore(device: Device) -> None:
    try:
        device.restore()
    except EdpilotError as exc:
        raise RestoreFailed(
            f"putting {device.name} back failed: {exc}; its saved state is kept: run `edpilot restore` (as root)"
        ) from exc
