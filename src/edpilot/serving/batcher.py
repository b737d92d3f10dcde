"""A sans-IO static batcher: fed requests and the time, asked what batch to run now.

It holds no clock and does no I/O, so the replay runner (virtual clock), the profiler and the live server
(event loop) drive the same object. Semantics (docs/architecture.md): a batch runs once `batch_size` requests are
queued; with `max_wait_s`, a partial batch is flushed once its oldest request has waited that long. FIFO.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Protocol, TypeVar

from edpilot.errors import ConfigError


class Arrived(Protocol):
    """Anything with an absolute arrival time in seconds on the driver's clock."""

    @property
    def arrival_s(self) -> float: ...


T = TypeVar("T", bound=Arrived)


class StaticBatcher(Generic[T]):
    """Queue of requests that releases them `batch_size` at a time (or fewer after `max_wait_s`)."""

    def __init__(self, batch_size: int, *, max_wait_s: float | None = None) -> None:
        self._queue: deque[T] = deque()
        self.batch_size = _checked_batch_size(batch_size)
        if max_wait_s is not None and not (max_wait_s >= 0 and max_wait_s < float("inf")):
            raise ConfigError(f"max wait must be a finite number of seconds >= 0, got {max_wait_s}")
        self.max_wait_s = max_wait_s

    def set_batch_size(self, batch_size: int) -> None:
        """Serve the next batches at `batch_size` (queued requests stay, in order)."""
        self.batch_size = _checked_batch_size(batch_size)

    def offer(self, request: T, now_s: float) -> None:
        """A request arrived (its `arrival_s` must not lie after `now_s`)."""
        if request.arrival_s > now_s + 1e-9:
            raise ValueError(f"request arrives at {request.arrival_s} s, after now ({now_s} s)")
        self._queue.append(request)

    def poll(self, now_s: float) -> list[T] | None:
        """The batch to run now, oldest first, or None to keep waiting."""
        if len(self._queue) >= self.batch_size:
            return [self._queue.popleft() for _ in range(self.batch_size)]
        deadline_s = self.next_deadline_s()
        if deadline_s is not None and now_s >= deadline_s:
            return [self._queue.popleft() for _ in range(len(self._queue))]
        return None

    def flush(self) -> list[T]:
        """Everything queued, as one (possibly partial) batch: the end of a window."""
        batch = list(self._queue)
        self._queue.clear()
        return batch

    def next_deadline_s(self) -> float | None:
        """When the queued partial batch must go (its oldest arrival + `max_wait_s`); None: no deadline."""
        if not self._queue or self.max_wait_s is None:
            return None
        if len(self._queue) >= self.batch_size:
            return self._queue[0].arrival_s
        return self._queue[0].arrival_s + self.max_wait_s

    def __len__(self) -> int:
        return len(self._queue)


def _checked_batch_size(batch_size: int) -> int:
    if int(batch_size) != batch_size or batch_size < 1:
        raise ConfigError(f"batch size must be a whole number >= 1, got {batch_size}")
    return int(batch_size)
