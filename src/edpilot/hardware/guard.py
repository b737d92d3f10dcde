"""Always undo: restore a device on normal exit, exceptions, Ctrl-C, SIGTERM and SIGHUP — even under more signals."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from types import FrameType

from edpilot.errors import DeviceError, EdpilotError
from edpilot.hardware.base import Device

log = logging.getLogger(__name__)

GUARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class RestoreFailed(DeviceError):
    """Putting a device back failed; its saved state stays for `edpilot restore`."""


class _Shield:
    """Turns the first signal into an exception; every later one is ignored so the restore runs to its end."""

    def __init__(self) -> None:
        self.exiting = False
        self.ignored: list[int] = []

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.exiting:
            self.ignored.append(signum)
            return
        self.exiting = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)


@contextlib.contextmanager
def guarded(device: Device, *, keep_on_success: bool = False) -> Iterator[Device]:
    """Yield `device`; afterwards restore it (unless the block succeeded and `keep_on_success`) and close it.

    SIGTERM and SIGHUP become SystemExit and SIGINT KeyboardInterrupt, so that `finally` blocks run; once
    exiting, further SIGINT/SIGTERM/SIGHUP are ignored until the device is restored and closed. SIGKILL
    cannot be caught: its saved state file is left for `edpilot restore`.
    """
    shield = _Shield()
    previous = {}
    for sig in GUARDED_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, shield.handle)
        except ValueError:  # not the main thread: leave signals alone
            break
    succeeded = False
    try:
        yield device
        succeeded = True
    finally:
        shield.exiting = True
        try:
            if not (succeeded and keep_on_success):
                _restore(device)
        finally:
            close = getattr(device, "close", None)  # SimDevice gains close() with the core rewrite
            if close is not None:
                close()
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
