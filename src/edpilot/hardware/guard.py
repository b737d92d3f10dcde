"""Always undo: restore a device on normal exit, exceptions, Ctrl-C and SIGTERM/SIGHUP."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from types import FrameType

from edpilot.hardware.base import Device

log = logging.getLogger(__name__)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def guarded(device: Device) -> Iterator[Device]:
    """Yield `device`; whatever happens inside, restore it afterwards and close it.

    SIGTERM and SIGHUP become SystemExit so that `finally` blocks run; Ctrl-C already raises
    KeyboardInterrupt. SIGKILL cannot be caught: its saved state file is left for `edpilot restore`.
    """
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[sig] = signal.signal(sig, _raise_exit)
        except ValueError:  # not the main thread: leave signals alone
            break
    try:
        yield device
    finally:
        try:
            device.restore()
        finally:
            close = getattr(device, "close", None)
            if close is not None:
                close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
