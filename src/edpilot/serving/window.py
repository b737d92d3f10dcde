"""One measurement window over an energy meter.

    with EnergyWindow(device, clock) as w:
        ...serve...
    w.energy_j, w.duration_s, w.meter_updates

`energy_j` is None when the meter has no reading at either end (no meter, or a read that failed), or
when it did not advance over a stretch of time (a counter that has not updated yet reads 0 J, which is
not a measurement): a measurement that could not be taken is missing, never held or invented.
`begin()`/`end()` do the same for
drivers whose window does not fit one block (the live server).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from edpilot.clock import Clock


class EnergyMeter(Protocol):
    """A monotonic joule counter; None when it cannot be read."""

    def energy_j(self) -> float | None: ...


class EnergyWindow:
    """Energy (J) and duration (s) between `begin()` and `end()` on one meter and clock."""

    def __init__(self, meter: EnergyMeter, clock: Clock, *, update_interval_ms: float | None = None) -> None:
        self.meter, self.clock, self.update_interval_ms = meter, clock, update_interval_ms
        self.start_s: float | None = None
        self.end_s: float | None = None
        self._start_j: float | None = None
        self._end_j: float | None = None

    def begin(self) -> EnergyWindow:
        """Read the meter and the clock at the window's start."""
        self._start_j = self.meter.energy_j()
        self.start_s = self.clock.now_s()
        return self

    def end(self) -> EnergyWindow:
        """Read the clock and the meter at the window's end."""
        if self.start_s is None:
            raise RuntimeError("EnergyWindow.end() before begin()")
        self.end_s = self.clock.now_s()
        self._end_j = self.meter.energy_j()
        return self

    @property
    def duration_s(self) -> float:
        """Seconds from begin to end."""
        if self.start_s is None or self.end_s is None:
            raise RuntimeError("the window is not closed")
        return self.end_s - self.start_s

    @property
    def energy_j(self) -> float | None:
        """Joules spent in the window, or None when the meter could not be read or did not advance."""
        if self._start_j is None or self._end_j is None:
            return None
        energy_j = self._end_j - self._start_j
        if energy_j <= 0 and self.duration_s > 0:
            return None
        return energy_j

    @property
    def meter_updates(self) -> float | None:
        """How many meter updates the window spans (None when the update interval is unknown)."""
        if not self.update_interval_ms:
            return None
        return self.duration_s * 1000.0 / self.update_interval_ms

    def __enter__(self) -> EnergyWindow:
        return self.begin()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.end()
