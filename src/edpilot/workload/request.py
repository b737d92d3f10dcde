"""One inference request as the batcher sees it."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Request:
    """A prompt to answer: when it arrives (s; a workload gives it relative to its window, `at` makes it absolute)."""

    request_id: int
    arrival_s: float
    prompt: str
    prompt_tokens: int
    max_new_tokens: int

    def at(self, start_s: float) -> Request:
        """This request with its arrival shifted by `start_s`: from window-relative to clock time."""
        return replace(self, arrival_s=start_s + self.arrival_s)
