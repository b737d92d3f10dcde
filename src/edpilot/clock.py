"""Clocks: every wait and every timestamp in edpilot goes through one of these.

Real runs use `WallClock`; simulated runs use `VirtualClock`, whose time jumps, so a long tuning
run on the simulator takes seconds. `ScaledClock` paces a simulated board on the wall clock, `speed`
times faster (the live server's `--sim-speed`).
"""

from __future__ import annotations

import math
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time in seconds, and a way to wait until a moment."""

    def now_s(self) -> float: ...

    def sleep_until(self, t_s: float) -> None: ...


class WallClock:
    """The real monotonic clock."""

    def now_s(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    def sleep_until(self, t_s: float) -> None:
        """Block until the monotonic clock reads `t_s` (returns at once if already past)."""
        delay_s = t_s - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)

    def sleep(self, duration_s: float) -> None:
        """Block for `duration_s` seconds."""
        if duration_s > 0:
            time.sleep(duration_s)


def cpu_time_s() -> float:
    """CPU seconds the calling thread has used (user + system): the work a benchmark did, not the machine's load.

    The thread's clock, not the process's: reading the process clock costs about 0.2 ms on a sandboxed kernel,
    as much as the decision a benchmark times with it, against under 1 µs for the thread's."""
    return time.thread_time()


class VirtualClock:
    """A clock that only moves when told to: waiting jumps straight to the deadline."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s

    def now_s(self) -> float:
        """Current virtual time in seconds."""
        return self._now_s

    def sleep_until(self, t_s: float) -> None:
        """Jump forward to `t_s` (never backward)."""
        self._now_s = max(self._now_s, t_s)

    def sleep(self, duration_s: float) -> None:
        """Jump forward by `duration_s` seconds."""
        if duration_s < 0:
            raise ValueError("cannot sleep a negative duration")
        self._now_s += duration_s


class ScaledClock:
    """Wall time × `speed`: simulated seconds that pass `speed` times faster than real ones."""

    def __init__(self, speed: float = 1.0) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"clock speed must be a finite number > 0, got {speed}")
        self.speed = speed
        self._t0_s = time.monotonic()

    def now_s(self) -> float:
        """Simulated seconds since the clock was made."""
        return (time.monotonic() - self._t0_s) * self.speed

    def wall_s(self, duration_s: float) -> float:
        """How many real seconds `duration_s` simulated seconds take."""
        return duration_s / self.speed

    def sleep_until(self, t_s: float) -> None:
        """Block until the clock reads `t_s` (returns at once if already past)."""
        self.sleep(t_s - self.now_s())

    def sleep(self, duration_s: float) -> None:
        """Block for `duration_s` simulated seconds."""
        if duration_s > 0:
            time.sleep(duration_s / self.speed)


def unix_time_s() -> float:
    """Seconds since the Unix epoch: a timestamp to show people (API `created` fields), never to measure with."""
    return time.time()
