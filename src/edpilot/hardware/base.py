"""The Device interface every hardware backend implements."""

from __future__ import annotations

from typing import Protocol


class Device(Protocol):
    """A GPU with a frequency knob and (maybe) an energy meter.

    `read_only` devices report levels and energy but never change the clock. `energy_j()` returns
    None when there is no meter (never a fake 0).
    """

    name: str
    read_only: bool

    def freqs_mhz(self) -> tuple[float, ...]:
        """Selectable GPU frequency levels in MHz, ascending (exact device values)."""
        ...

    def current_freq_mhz(self) -> float:
        """The GPU frequency in MHz right now."""
        ...

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Pin the GPU at `freq_mhz` (one of `freqs_mhz()`)."""
        ...

    def energy_j(self) -> float | None:
        """Monotonic energy counter in joules, or None without a meter."""
        ...

    def describe(self) -> dict[str, object]:
        """What the run log and `edpilot devices` show about this device."""
        ...

    def restore(self) -> None:
        """Undo every change this device made (idempotent)."""
        ...
