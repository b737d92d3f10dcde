"""Save and undo per knob: one device lock, one state file per knob, and restorers found by kind.

A backend registers how to put back one kind of saved state (`register_restorer("jetson-emc", fn)`); the
device's `restore()` and `edpilot restore` both undo through the same registry, so a new knob gets every
guarantee of the old ones (signals, SIGKILL then `edpilot restore`, untrusted files) by registering once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edpilot.errors import DeviceError, EdpilotError
from edpilot.hardware.lock import DeviceLock
from edpilot.hardware.nvml_api import NvmlApi
from edpilot.hardware.state import StateStore

log = logging.getLogger(__name__)

DEVICE_FIELD = "device"  # a knob's state names the device whose lock guards it (absent: its own key)


@dataclass
class RestoreContext:
    """What a restorer may use: the sysfs root it trusts, and NVML loaded only when a state needs it."""

    root: Path
    nvml: NvmlApi | None = None

    def nvml_api(self) -> NvmlApi:
        """NVML, loaded on first use."""
        if self.nvml is None:
            self.nvml = NvmlApi.load()
        return self.nvml


Restorer = Callable[[Mapping[str, Any], RestoreContext], int]
_RESTORERS: dict[str, Restorer] = {}


def register_restorer(kind: str, restorer: Restorer) -> None:
    """Make saved states whose `backend` is `kind` undo through `restorer(state, context) -> files written`."""
    _RESTORERS[kind] = restorer


def restorer_kinds() -> tuple[str, ...]:
    """Every kind of saved state edpilot can undo."""
    return tuple(_RESTORERS)


def undo_state(state: Mapping[str, Any], context: RestoreContext) -> int:
    """Put back one saved state through its kind's restorer; return how many files (or calls) it wrote."""
    kind = state.get("backend")
    if kind not in _RESTORERS:
        raise DeviceError(f"unknown backend {kind!r} (edpilot knows {', '.join(sorted(_RESTORERS))})")
    return _RESTORERS[kind](state, context)


def lock_key(state: Mapping[str, Any]) -> str:
    """The key of the device lock that guards a saved state."""
    device = state.get(DEVICE_FIELD)
    return device if isinstance(device, str) else str(state["key"])


class KnobGuard:
    """One device's lock and the saved original of each knob it changed.

    `save()` before the first change of a knob takes the lock and writes the knob's state file (the first one
    stays: it is the original); `undo()` puts every changed knob back, newest first, through the registry,
    and forgets each state it restored. A knob that fails to restore keeps its file for `edpilot restore`,
    the others are still restored, and the first failure is raised at the end.
    """

    def __init__(self, store: StateStore, *, device_key: str, name: str, context: RestoreContext) -> None:
        self.store, self.device_key, self.name, self.context = store, device_key, name, context
        self._lock = DeviceLock(store.lock_path(device_key), name=name)
        self._changed: list[str] = []

    @property
    def changed(self) -> tuple[str, ...]:
        """Keys of the knobs changed and not yet undone."""
        return tuple(self._changed)

    def save(self, knob_key: str, kind: str, original: Mapping[str, Any]) -> None:
        """Take the device lock and save `original` for `knob_key` (kept if one is saved already)."""
        self.store.ensure_directory()
        self._lock.acquire()
        state = {"backend": kind, **original}
        if knob_key != self.device_key:
            state[DEVICE_FIELD] = self.device_key
        self.store.save(knob_key, state)
        if knob_key not in self._changed:
            self._changed.append(knob_key)

    def undo(self) -> None:
        """Put back every changed knob (newest first), forget its state, release the lock (idempotent)."""
        first_error: EdpilotError | None = None
        for knob_key in reversed(self._changed):
            try:
                saved = self.store.load(knob_key)
                if saved is not None:
                    undo_state(saved, self.context)
                self.store.remove(knob_key)
                self._changed.remove(knob_key)
            except EdpilotError as exc:
                log.warning("%s: could not put %s back: %s", self.name, knob_key, exc)
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        self._lock.release()

    def release(self) -> None:
        """Let go of the device lock (never undoes: that is `undo()`)."""
        self._lock.release()
