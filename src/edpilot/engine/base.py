"""The Engine interface every inference backend implements: static batches, streamed token by token.

Two ways in. `generate(batch, on_token)` runs one static batch to completion and calls `on_token(i, text)`
as request i's text grows, once per decode step (or per upstream chunk), from the engine's thread;
`on_decode()` is called once, from the same thread, between the batch's prefill and its first decode step
(per-phase clocks: the caller writes the decode levels there). The
iteration-level `SequenceEngine` (continuous batching) is driven one decode step at a time: `add` a request
and it joins at the next `step`, which also prefills it; `step` returns each running request's new text and
the requests it finished, so a request never waits for the others of a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from edpilot.workload import Request

TokenSink = Callable[[int, str], None]
"""Called as a request's text grows: (index of the request in its batch, the new text)."""

DecodeHook = Callable[[], None]
"""Called once per batch after its prefill, before its first decode step (never when no request decodes on)."""


@dataclass(frozen=True)
class Completion:
    """What one request got back. Times count from the batch start (s; None if unknown): `ttft_s` to its first
    token, `last_token_s` to its last (a request's inter-token latency is their gap over `output_tokens` − 1)."""

    text: str
    output_tokens: int
    ttft_s: float | None = None
    error: str | None = None
    last_token_s: float | None = None

    @property
    def itl_s(self) -> float | None:
        """Mean time between this request's tokens (s); None with fewer than two tokens or unknown times."""
        if self.ttft_s is None or self.last_token_s is None or self.output_tokens < 2:
            return None
        return (self.last_token_s - self.ttft_s) / (self.output_tokens - 1)


class Engine(Protocol):
    """Runs one static batch to completion, streaming each request's text as it is decoded.

    An engine whose first batch of a new size is slow (compilation, buffer allocation) sets
    `needs_warmup = True`; the runner then serves one untimed batch of each new size before measuring it.
    """

    name: str
    needs_warmup: bool

    def generate(
        self, batch: Sequence[Request], on_token: TokenSink | None = None, *, on_decode: DecodeHook | None = None
    ) -> list[Completion]:
        """Answer every request of `batch` together; returns one Completion per request, in order.

        `on_decode` runs between the prefill and the first decode step; its time counts in the batch's. An engine
        that cannot see that boundary (a remote server) raises ConfigError when given one.
        """
        ...

    def describe(self) -> dict[str, object]:
        """What the run log shows about this engine; always has "model" (what really runs) and "backend"."""
        ...

    def close(self) -> None:
        """Release the model and cancel in-flight work; idempotent."""
        ...


@dataclass(frozen=True)
class Step:
    """What one decode step gave: new text by request id, and the requests it finished (with their answers).

    Times in the finished Completions count from the request's join (the step it was added at)."""

    text: dict[int, str] = field(default_factory=dict)
    finished: dict[int, Completion] = field(default_factory=dict)


@runtime_checkable
class SequenceEngine(Protocol):
    """Iteration-level decoding (continuous batching): requests join and leave at step boundaries.

    An engine whose first steps are slow (kernels loaded, buffers allocated for each new shape) sets
    `needs_warmup = True`; its sequences then run through `continuous_runner.warm_up` before any step is measured.
    """

    name: str
    needs_warmup: bool

    def add(self, request: Request) -> None:
        """Queue `request` to join the running sequences at the next step (which prefills it)."""
        ...

    def step(self) -> Step:
        """One decode step of every running sequence; blocks for the step's time."""
        ...

    def running(self) -> int:
        """Sequences added and not yet finished."""
        ...

    def cancel(self, request_id: int) -> None:
        """Stop decoding a request (its client went away); a later step reports it finished with an error."""
        ...

    def wake(self) -> None:
        """Make a `step` that is waiting (on an upstream server) return early: a request is waiting to join."""
        ...


@runtime_checkable
class Gateway(Protocol):
    """An engine whose work happens in another server, reached over a network, streamed on an event loop.

    A server in front of it gives it its own loop (`share_loop`), so an upstream chunk is read, relayed and
    written to the client by one thread; with continuous batching it takes each chunk's text through the sink
    of `send_text_to` as it arrives, and its `step` returns when requests finish (or on `wake`), so no thread
    wakes per chunk to run a step."""

    api_url: str  # the upstream server's API root (…/v1)

    def share_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the upstream streams on `loop` (a running server's) from now on."""
        ...

    async def leave_loop(self) -> None:
        """Close what it holds on the shared loop (the server is stopping)."""
        ...

    def send_text_to(self, sink: Callable[[int, str], None]) -> None:
        """Hand each added request's new text to `sink(request_id, text)` as it arrives, not through `step`."""
        ...
