"""Saved original device state: written before the first change, removed once undone.

A run that is SIGKILLed leaves its file behind; `edpilot restore` reads every file and undoes it.
Files live in $EDPILOT_STATE_DIR, else $XDG_STATE_HOME/edpilot, else ~/.local/state/edpilot.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from edpilot.errors import DeviceError

STATE_DIR_ENV = "EDPILOT_STATE_DIR"


def state_dir() -> Path:
    """Where state files live."""
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state"
    return Path(base) / "edpilot"


class StateStore:
    """One JSON file per device key, written atomically."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_dir()

    def path(self, key: str) -> Path:
        """The file that holds `key`'s saved state."""
        return self.directory / (re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_") + ".json")

    def save(self, key: str, state: dict[str, Any]) -> Path:
        """Write `state` for `key` unless a saved state already exists (the first one is the original)."""
        path = self.path(key)
        if path.exists():
            return path
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"key": key, **state}, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise DeviceError(
                f"cannot save the original device state in {self.directory}: {exc}; "
                f"set {STATE_DIR_ENV} to a writable folder"
            ) from None
        return path

    def load(self, key: str) -> dict[str, Any] | None:
        """The saved state for `key`, or None."""
        path = self.path(key)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def all(self) -> list[dict[str, Any]]:
        """Every saved state, oldest file first."""
        if not self.directory.is_dir():
            return []
        files = sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime)
        return [json.loads(p.read_text(encoding="utf-8")) for p in files]

    def remove(self, key: str) -> None:
        """Forget `key`'s saved state (after it was undone)."""
        self.path(key).unlink(missing_ok=True)
