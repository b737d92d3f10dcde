"""Saved original device state: written before the first change, removed once undone.

A run that is SIGKILLed leaves its file behind; `edpilot restore` reads every file and undoes it.
Files live in $EDPILOT_STATE_DIR, else $XDG_STATE_HOME/edpilot, else ~/.local/state/edpilot. Only files
owned by this user, in a directory nobody else may write, are trusted: root never acts on a file another
user could have planted. Files are written atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edpilot.errors import DeviceError

STATE_DIR_ENV = "EDPILOT_STATE_DIR"
MAX_STATE_BYTES = 64 * 1024


def state_dir() -> Path:
    """Where state files live."""
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state"
    return Path(base) / "edpilot"


class CorruptState(DeviceError):
    """A state file that cannot be read as one (truncated, not JSON, wrong shape)."""


@dataclass(frozen=True)
class StateEntry:
    """One state file: its contents, or why it cannot be used (`problem` is 'corrupt' or 'untrusted')."""

    path: Path
    state: dict[str, Any] | None
    problem: str | None = None
    detail: str | None = None


def _untrusted(st: os.stat_result, what: str, path: Path) -> str | None:
    if st.st_uid != os.geteuid():
        return f"{what} {path} is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} {path} may be written by others (mode {stat.S_IMODE(st.st_mode):o}); chmod go-w it"
    return None


class StateStore:
    """One JSON file per device key, plus a lock file per key (see `edpilot.hardware.lock`)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else state_dir()

    def path(self, key: str) -> Path:
        """The file that holds `key`'s saved state."""
        return self.directory / (self._stem(key) + ".json")

    def lock_path(self, key: str) -> Path:
        """The lock file that guards `key`'s clocks."""
        return self.directory / (self._stem(key) + ".lock")

    @staticmethod
    def _stem(key: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")

    def ensure_directory(self) -> None:
        """Create the directory (mode 0700) and check that it can be trusted; DeviceError if not."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            problem = _untrusted(self.directory.stat(), "state directory", self.directory)
        except OSError as exc:
            raise DeviceError(
                f"cannot use the state directory {self.directory}: {exc.strerror or exc}; "
                f"set {STATE_DIR_ENV} to a folder you own"
            ) from None
        if problem:
            raise DeviceError(f"refusing to use saved state: {problem}; set {STATE_DIR_ENV} to a folder you own")

    def save(self, key: str, state: dict[str, Any]) -> Path:
        """Write `state` for `key` unless a saved state exists (the first one is the original); never over a bad one."""
        self.ensure_directory()
        path = self.path(key)
        if self.load(key) is not None:
            return path
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"key": key, **state}, fh, indent=2)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise DeviceError(
                f"cannot save the original device state in {self.directory}: {exc.strerror or exc}; "
                f"set {STATE_DIR_ENV} to a writable folder"
            ) from None
        return path

    def load(self, key: str) -> dict[str, Any] | None:
        """The saved state for `key`, or None; CorruptState/DeviceError for a bad or untrusted file."""
        path = self.path(key)
        if not os.path.lexists(path):
            return None
        entry = self.read(path)
        if entry.problem is not None:
            error = CorruptState if entry.problem == "corrupt" else DeviceError
            raise error(
                f"{entry.detail}; edpilot will not change clocks without a good saved original. "
                "`edpilot restore` reports it; `edpilot restore --discard` removes a corrupt file"
            )
        return entry.state

    def read(self, path: Path) -> StateEntry:
        """One state file, checked: owned by this user, not a link, not writable by others, a JSON object."""
        try:
            st = os.lstat(path)
        except OSError as exc:
            return StateEntry(path, None, "corrupt", f"state file {path} cannot be read: {exc.strerror or exc}")
        if not stat.S_ISREG(st.st_mode):
            return StateEntry(path, None, "untrusted", f"state file {path} is not a regular file (a link?)")
        problem = _untrusted(st, "state file", path)
        if problem:
            return StateEntry(path, None, "untrusted", problem)
        try:
            if st.st_size > MAX_STATE_BYTES:
                raise ValueError(f"{st.st_size} bytes, more than a state file holds")
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict) or not isinstance(state.get("key"), str):
                raise ValueError("not a JSON object with a 'key'")
            if not isinstance(state.get("backend"), str):
                raise ValueError("no 'backend'")
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return StateEntry(path, None, "corrupt", f"state file {path} is corrupt ({exc})")
        except RecursionError:  # brackets nested thousands deep: never a state edpilot wrote
            return StateEntry(path, None, "corrupt", f"state file {path} is corrupt (nested too deeply)")
        return StateEntry(path, state)

    def entries(self) -> list[StateEntry]:
        """Every state file, oldest first; DeviceError if the directory itself cannot be trusted."""
        if not self.directory.is_dir():
            return []
        problem = _untrusted(self.directory.stat(), "state directory", self.directory)
        if problem:
            raise DeviceError(f"refusing to read saved state: {problem}; set {STATE_DIR_ENV} to a folder you own")
        files = sorted(self.directory.glob("*.json"), key=lambda p: (os.lstat(p).st_mtime, p.name))
        return [self.read(p) for p in files]

    def remove(self, key: str) -> None:
        """Forget `key`'s saved state (after it was undone)."""
        self.path(key).unlink(missing_ok=True)
