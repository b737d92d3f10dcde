"""One measurement window over an energy meter.

    with EnergyWindow(device, clock) as w:
        ...serve...
    w.energy_j, w.duration_s, w.meter_updates

`energy_j` is None when the meter has no reading at either end (no meter, or a read that failed), or
when it did not advance over a stretch of time (a counter that has not updated yet reads 0 J, which is
not a measurement): a measurement that could not be taken is missing, never held or invented.
`begin()`/`end()` do the same for drivers whose window does not fit one block (the live server).

A meter that updates in steps (NVML's total-energy counter: every ~100 ms) reads up to one step stale at
each end of a window: over a 1 s window that alone is a few % of spread. With `align=True` and a known
update interval, `begin()` waits for the counter to tick and starts the window at that tick, and `end()`
waits for the next tick after the work and ends there, so the energy is exactly the counter's over the
window's time. `work_end_s` keeps when the work itself ended (the window's tail after it is at most one
update). A meter that never ticks within `TICK_TIMEOUT_UPDATES` intervals leaves that end unaligned.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from edpilot.clock import Clock

TICK_POLL_S = 0.001  # how often a waiting window reads the counter
TICK_TIMEOUT_UPDATES = 3.0  # give up waiting for a tick after this many update intervals


class EnergyMeter(Protocol):
    """A monotonic joule counter; None when it cannot be read."""

    def energy_j(self) -> float | None: ...


def wait_for_tick(
    meter: EnergyMeter, clock: Clock, *, timeout_s: float, poll_s: float = TICK_POLL_S
) -> tuple[float, float] | None:
    """Poll the meter until its reading changes; (time s, joules) of the first new reading, or None.

    None when the reading does not change within `timeout_s` or cannot be read.
    """
    first_j = meter.energy_j()
    if first_j is None:
        return None
    deadline_s = clock.now_s() + timeout_s
    while clock.now_s() < deadline_s:
        clock.sleep_until(clock.now_s() + poll_s)
        energy_j = meter.energy_j()
        now_s = clock.now_s()
        if energy_j is None:
            return None
        if energy_j != first_j:
            return now_s, energy_j
    return None


class EnergyWindow:
    """Energy (J) and duration (s) between `begin()` and `end()` on one meter and clock."""

    def __init__(
        self, meter: EnergyMeter, clock: Clock, *, update_interval_ms: float | None = None, align: bool = False
    ) -> None:
        self.meter, self.clock, self.update_interval_ms = meter, clock, update_interval_ms
        self.align = align and bool(update_interval_ms)
        self.start_s: float | None = None
        self.end_s: float | None = None
        self.work_end_s: float | None = None
        self.aligned_start = self.aligned_end = False
        self._start_j: float | None = None
        self._end_j: float | None = None

    def _tick(self) -> tuple[float, float] | None:
        timeout_s = TICK_TIMEOUT_UPDATES * self.update_interval_ms / 1000.0  # type: ignore[operator]
        return wait_for_tick(self.meter, self.clock, timeout_s=timeout_s)

    def begin(self) -> EnergyWindow:
        """Read the meter and the clock at the window's start (at the next counter tick when aligned)."""
        tick = self._tick() if self.align else None
        if tick is not None:
            self.start_s, self._start_j = tick
            self.aligned_start = True
            return self
        self._start_j = self.meter.energy_j()
        self.start_s = self.clock.now_s()
        return self

    def end(self) -> EnergyWindow:
        """Read the clock and the meter at the window's end (at the next counter tick when aligned)."""
        if self.start_s is None:
            raise RuntimeError("EnergyWindow.end() before begin()")
        self.work_end_s = self.clock.now_s()
        tick = self._tick() if self.align else None
        if tick is not None:
            self.end_s, self._end_j = tick
            self.aligned_end = True
            return self
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
    def tail_s(self) -> float:
        """Seconds from the end of the work to the end of the window (the wait for the closing tick)."""
        if self.end_s is None or self.work_end_s is None:
            raise RuntimeError("the window is not closed")
        return self.end_s - self.work_end_s

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
    def end_reading_j(self) -> float | None:
        """The meter's reading at the window's end (J since the meter started), or None."""
        return self._end_j

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
