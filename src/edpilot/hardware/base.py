"""The Device interface every hardware backend implements, with the capabilities it declares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edpilot.clock import Clock


@dataclass(frozen=True)
class DeviceCapabilities:
    """What a device can do, declared instead of probed.

    `can_set_clocks` is False for read-only devices, dry runs and devices without a knob (then
    `read_only_reason` says why); `has_meter` says whether `energy_j()` gives numbers, and
    `meter_update_interval_ms` how often its reading changes (None when unknown).
    """

    can_set_clocks: bool
    read_only_reason: str | None = None
    dry_run: bool = False
    has_meter: bool = True
    meter_update_interval_ms: float | None = None


class Device(Protocol):
    """A GPU with a frequency knob (maybe) and an energy meter (maybe).

    `freqs_mhz()` is empty for a device without a knob; `energy_j()` returns None when no reading could
    be taken (never a fake 0 or a held value). `clock` is the time the device lives in: the wall clock
    on hardware, the virtual clock on the simulator.
    """

    name: str
    clock: Clock
    capabilities: DeviceCapabilities

    def freqs_mhz(self) -> tuple[float, ...]:
        """Selectable GPU frequency levels in MHz, ascending (exact device values); () without a knob."""
        ...

    def current_freq_mhz(self) -> float | None:
        """The GPU frequency in MHz right now, or None when it cannot be read."""
        ...

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Pin the GPU at `freq_mhz` (one of `freqs_mhz()`)."""
        ...

    def energy_j(self) -> float | None:
        """Monotonic energy counter in joules, or None without a reading."""
        ...

    def describe(self) -> dict[str, object]:
        """What the run log and `edpilot devices` show about this device."""
        ...

    def restore(self) -> None:
        """Undo every change this device made (idempotent)."""
        ...

    def close(self) -> None:
        """Release threads and handles (idempotent)."""
        ...
