"""`edpilot restore`: undo every saved state, one file at a time; a bad file is reported and never blocks the rest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edpilot.errors import DeviceError
from edpilot.hardware.devfreq import StaleState
from edpilot.hardware.lock import DeviceBusy, DeviceLock
from edpilot.hardware.nvml_api import NvmlApi
from edpilot.hardware.state import StateEntry, StateStore
from edpilot.hardware.sysfs import sysfs_root
from edpilot.hardware.undo import RestoreContext, lock_key, undo_state

Status = Literal["restored", "already", "discarded", "stale", "corrupt", "untrusted", "busy", "failed"]
OK_STATUSES = ("restored", "already", "discarded")


@dataclass(frozen=True)
class RestoreOutcome:
    """What happened to one state file."""

    path: str
    key: str | None
    status: Status
    message: str

    @property
    def ok(self) -> bool:
        """Whether nothing is left to undo for this file."""
        return self.status in OK_STATUSES


class _Restorer:
    def __init__(self, store: StateStore, root: Path, discard: bool, nvml: NvmlApi | None) -> None:
        self.store, self.discard = store, discard
        self.context = RestoreContext(root=root, nvml=nvml)

    def one(self, entry: StateEntry) -> RestoreOutcome:
        path = str(entry.path)
        if entry.state is None:
            if entry.problem == "corrupt" and self.discard:
                entry.path.unlink(missing_ok=True)
                return RestoreOutcome(path, None, "discarded", f"removed {entry.detail}")
            hint = "; `edpilot restore --discard` removes it" if entry.problem == "corrupt" else ""
            return RestoreOutcome(path, None, entry.problem or "corrupt", f"{entry.detail}{hint}")  # type: ignore[arg-type]
        key = str(entry.state["key"])
        device = lock_key(entry.state)
        lock = DeviceLock(self.store.lock_path(device), name=device)
        try:
            lock.acquire()
        except DeviceBusy as exc:
            return RestoreOutcome(path, key, "busy", str(exc))
        except DeviceError as exc:
            return RestoreOutcome(path, key, "failed", str(exc))
        try:
            return self._undo(entry, key)
        finally:
            lock.release()

    def _undo(self, entry: StateEntry, key: str) -> RestoreOutcome:
        path, state = str(entry.path), entry.state or {}
        try:
            writes = undo_state(state, self.context)
        except StaleState as exc:
            if self.discard:
                entry.path.unlink(missing_ok=True)
                return RestoreOutcome(path, key, "discarded", f"removed {path}: {exc}")
            return RestoreOutcome(path, key, "stale", f"{path}: {exc}; `edpilot restore --discard` removes it")
        except DeviceError as exc:
            return RestoreOutcome(path, key, "failed", f"could not restore {key} from {path}: {exc}")
        entry.path.unlink(missing_ok=True)
        if writes == 0:
            return RestoreOutcome(path, key, "already", f"{key} already had its saved settings; removed {path}")
        return RestoreOutcome(path, key, "restored", f"restored {key}")


def restore_saved(
    store: StateStore | None = None,
    *,
    sysfs_root_dir: str | Path | None = None,
    discard: bool = False,
    nvml: NvmlApi | None = None,
) -> list[RestoreOutcome]:
    """Undo every saved state (left by killed runs or `apply` without `--hold`); one outcome per file.

    Files for a device another edpilot process holds are left to it (`busy`). With `discard`, files that can
    never be restored (corrupt, or their device is gone) are removed. Raises DeviceError only when the state
    directory itself cannot be trusted.
    """
    restorer = _Restorer(store or StateStore(), sysfs_root(sysfs_root_dir), discard, nvml)
    return [restorer.one(entry) for entry in restorer.store.entries()]
