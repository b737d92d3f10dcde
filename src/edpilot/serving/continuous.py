"""A sans-IO continuous-batching scheduler: fed requests and the time, asked which requests join the next step.

The knob is `slots`, the most sequences decoding at once. A request that arrives while a slot is free joins at
the next decode step (its prefill rides in that step); otherwise it waits, FIFO, until a running sequence ends.
Like `StaticBatcher`, it holds no clock and does no I/O, so the replay runner, the profiler and the live server
drive the same object:

    scheduler.offer(request, now_s)        # an arrival
    joins = scheduler.poll(now_s)          # before each step: who joins it
    scheduler.release(n)                   # after a step: n sequences finished (or were cancelled)
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from edpilot.errors import ConfigError
from edpilot.serving.batcher import Arrived

T = TypeVar("T", bound=Arrived)


class ContinuousScheduler(Generic[T]):
    """FIFO queue in front of at most `slots` running sequences; requests join at step boundaries."""

    def __init__(self, slots: int) -> None:
        self._queue: deque[T] = deque()
        self.slots = _checked_slots(slots)
        self.running = 0

    def set_slots(self, slots: int) -> None:
        """Serve at most `slots` sequences from the next step on; running ones past it finish, none is cut."""
        self.slots = _checked_slots(slots)

    @property
    def free_slots(self) -> int:
        """Slots a queued request could take at the next step."""
        return max(0, self.slots - self.running)

    def offer(self, request: T, now_s: float) -> None:
        """A request arrived (its `arrival_s` must not lie after `now_s`)."""
        if request.arrival_s > now_s + 1e-9:
            raise ValueError(f"request arrives at {request.arrival_s} s, after now ({now_s} s)")
        self._queue.append(request)

    def poll(self, now_s: float) -> list[T]:
        """The requests that join the next step, oldest first (they count as running from now)."""
        joins = [self._queue.popleft() for _ in range(min(self.free_slots, len(self._queue)))]
        self.running += len(joins)
        return joins

    def release(self, sequences: int = 1) -> None:
        """`sequences` running sequences ended (finished, failed or cancelled): their slots are free."""
        if not 0 <= sequences <= self.running:
            raise ValueError(f"cannot release {sequences} sequences: {self.running} are running")
        self.running -= sequences

    def next_deadline_s(self) -> float | None:
        """When a step must start for a queued request: its arrival when a slot is free; None: nothing can join."""
        if not self._queue or self.free_slots == 0:
            return None
        return self._queue[0].arrival_s

    def flush(self) -> list[T]:
        """Everything queued (not running): the end of service."""
        queued = list(self._queue)
        self._queue.clear()
        return queued

    def __len__(self) -> int:
        return len(self._queue)


def _checked_slots(slots: int) -> int:
    if int(slots) != slots or slots < 1:
        raise ConfigError(f"concurrent sequences must be a whole number >= 1, got {slots}")
    return int(slots)
