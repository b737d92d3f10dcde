"""The Engine interface every inference backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from edpilot.workload import Request


@dataclass(frozen=True)
class Completion:
    """What one request of a batch got back; `ttft_s` counts from the batch start (None if unknown)."""

    text: str
    output_tokens: int
    ttft_s: float | None = None
    error: str | None = None


class Engine(Protocol):
    """Runs one static batch to completion.

    An engine whose first batch of a new size is slow (compilation, buffer allocation) sets
    `needs_warmup = True`; the runner then serves one untimed batch of each new size before measuring it.
    """

    name: str
    needs_warmup: bool

    def generate(self, batch: Sequence[Request]) -> list[Completion]:
        """Answer every request of `batch` together; returns one Completion per request, in order."""
        ...

    def describe(self) -> dict[str, object]:
        """What the run log shows about this engine; always has "model" (what really runs) and "backend"."""
        ...

    def close(self) -> None:
        """Release the model and cancel in-flight work; idempotent."""
        ...
