"""One process at a time per device: an exclusive flock on a lock file next to the saved state."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from edpilot.errors import DeviceError


class DeviceBusy(DeviceError):
    """Another process holds the device's lock."""


class DeviceLock:
    """An exclusive, non-blocking lock on `path`; the holder's pid is written into the file."""

    def __init__(self, path: Path, *, name: str) -> None:
        self.path = path
        self.name = name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (idempotent); DeviceBusy naming the holder's pid if another process has it."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DeviceError(f"cannot open the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise DeviceBusy(
                    f"{self.name} is in use by another edpilot process (pid {holder}), which will put its "
                    "clocks back when it ends; wait for it or stop it (kill -TERM), then try again"
                ) from None
            raise DeviceError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError as exc:  # a full disk, a file-size limit
            os.close(fd)
            raise DeviceError(
                f"cannot write the lock file {self.path}: {exc.strerror or exc}; free space there or set "
                "EDPILOT_STATE_DIR to a writable folder"
            ) from None
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)
