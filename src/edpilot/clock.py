"""Clocks: every wait and every timestamp in edpilot goes through one of these.

Real runs use `WallClock`; simulated runs use `VirtualClock`, whose time jumps, so a long tuning
run on the simulator takes seconds.
"""

from __future__ import annotations

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
