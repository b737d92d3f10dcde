"""The core's static batcher, live: requests queue on the event loop, batches run on one worker thread.

The event loop never blocks on generation: `submit` stamps the arrival on the device's clock and offers
the request to the sans-IO `StaticBatcher`; the loop task polls it, sleeps until the next arrival or the
`max_wait_s` deadline, and hands each batch to the worker thread (`ServingDriver.serve`). Tokens travel back
as the engine makes them: each request's `pieces` gets its text step by step (pieces that arrive before the
event loop runs travel together, with one wake-up), then its end.
A request whose client went away is dropped when its batch is released (or its answer is discarded if it is already
running); the batch goes on. `drain` answers every queued request with an error and lets the running
batch finish: the graceful half of a shutdown. If the batch loop itself fails (a clock write that raises, a run
log that cannot be written), the cause is logged, `failure` says it, the running and queued requests are answered
with an error, new ones are refused, and `on_failure` is called: the server stops rather than accept requests it
will not answer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from edpilot.clock import Clock
from edpilot.errors import EdpilotError
from edpilot.server.driver import BatchResult, ServingDriver
from edpilot.server.estimator import TrafficEstimator
from edpilot.server.metrics import ServerMetrics
from edpilot.serving.batcher import StaticBatcher
from edpilot.workload import Request

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """The server is shutting down (or has failed): no new requests, and queued ones are answered with this."""


class QueueFull(Exception):
    """Too many requests are waiting; `retry_after_s` (wall seconds) is when a slot is likely free."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("the request queue is full")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Answer:
    """One request's result: its completion text and tokens, energy share (J), latency (clock s)."""

    text: str
    output_tokens: int
    energy_j: float | None
    latency_s: float
    error: str | None


class Pieces:
    """A request's text on its way from the engine's thread to its stream on the event loop.

    `put_threadsafe` appends from any thread; it wakes the loop only when a stream waits in `take`, and once for
    however many pieces arrive before the loop runs (an answer sent whole wakes nothing); on the loop's own thread
    (a gateway streaming there) it needs no wake-up. `take` returns every
    piece waiting (at least one), or None once `end` was called (on the loop) and nothing is left."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()  # made on the loop's thread, with its request's future
        self._texts: list[str] = []
        self._lock = threading.Lock()
        self._wake_due = False
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    def put_threadsafe(self, text: str) -> None:
        """Queue `text` (from the engine's thread, or the loop)."""
        with self._lock:
            self._texts.append(text)
            if self._wake_due or self._waiter is None:
                return
            self._wake_due = True
        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(self._wake)  # the loop's own thread (an engine streaming on it): no wake-up needed
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def end(self) -> None:
        """No more text: `take` returns None once the rest is taken (on the loop)."""
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            self._wake_due = False
            waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> list[str] | None:
        """Every piece waiting (at least one), or None at the end."""
        while True:
            with self._lock:
                texts, self._texts = self._texts, []
                waiter = None if texts or self._ended else self._loop.create_future()
                self._waiter = waiter
            if waiter is None:
                return texts or None
            await waiter


@dataclass
class Pending:
    """A queued request, the future its handler awaits, and its text as it is made (`pieces`).

    `first_token_s` and `last_token_s` are stamped on the device's clock by the engine's thread, which then calls
    `on_first_token` (if set) once."""

    request: Request
    future: asyncio.Future[Answer]
    cancelled: bool = field(default=False)
    first_token_s: float | None = None
    last_token_s: float | None = None
    on_first_token: Callable[[], None] | None = None
    pieces: Pieces = field(init=False)

    def __post_init__(self) -> None:
        self.pieces = Pieces(self.future.get_loop())

    def finish(self, answer: Answer | BaseException) -> None:
        """Settle the future (on the event loop) and end the stream of pieces."""
        if self.future.done():
            return
        if isinstance(answer, BaseException):
            self.future.set_exception(answer)
        else:
            self.future.set_result(answer)
        self.pieces.end()

    @property
    def arrival_s(self) -> float:
        """Arrival on the device's clock (s)."""
        return self.request.arrival_s

    def cancel(self) -> None:
        """The client went away: drop it at release, discard its answer if it is running."""
        self.cancelled = True


class LiveBatcher:
    """Queue, batch loop and worker thread around one ServingDriver."""

    def __init__(
        self,
        driver: ServingDriver,
        *,
        clock: Clock,
        wall_per_clock_s: float,
        max_wait_s: float | None,
        max_queue: int,
        estimator: TrafficEstimator,
        metrics: ServerMetrics,
    ) -> None:
        self.driver, self.clock, self.wall_per_clock_s = driver, clock, wall_per_clock_s
        self.max_queue, self.estimator, self.metrics = max_queue, estimator, metrics
        self.batcher: StaticBatcher[Pending] = StaticBatcher(driver.config.batch_size, max_wait_s=max_wait_s)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edpilot-batch")
        self.draining = False
        self.failure: str | None = None
        self.on_failure: Callable[[], None] | None = None
        self._running: list[Pending] = []
        self._ids = itertools.count()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._mean_batch_s = 1.0

    async def start(self) -> None:
        """Open the first round on the worker thread and start the batch loop."""
        self._loop = loop = asyncio.get_running_loop()
        config = await loop.run_in_executor(self.executor, self.driver.start)
        self.batcher.set_batch_size(config.batch_size)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="edpilot-batch-loop")

    def submit(self, prompt: str, *, prompt_tokens: int, max_new_tokens: int) -> Pending:
        """Queue one request (on the event loop); raises Unavailable or QueueFull."""
        if self.failure is not None:
            raise Unavailable(f"the server failed and is stopping: {self.failure}")
        if self.draining or self._wake is None:
            raise Unavailable("the server is shutting down")
        if len(self.batcher) >= self.max_queue:
            batches_ahead = len(self.batcher) / self.batcher.batch_size + 1
            raise QueueFull(batches_ahead * self._mean_batch_s * self.wall_per_clock_s)
        now_s = self.clock.now_s()
        request = Request(next(self._ids), now_s, prompt, prompt_tokens, max_new_tokens)
        pending = Pending(request, asyncio.get_running_loop().create_future())
        self.batcher.offer(pending, now_s)
        self.metrics.queue_depth.set(len(self.batcher))
        change = self.estimator.observe(now_s, prompt_tokens=prompt_tokens, output_tokens=max_new_tokens)
        if change is not None:
            self.driver.offer_traffic(change)
        self._wake.set()
        return pending

    def drain(self) -> None:
        """Refuse new requests and answer every queued one with Unavailable (on the event loop)."""
        if self.draining:
            return
        self.draining = True
        queued = self.batcher.flush()
        _refuse(queued, Unavailable("the server is shutting down"))
        log.info("shutting down: %d queued requests answered with an error; finishing the running batch", len(queued))
        self.metrics.queue_depth.set(0)
        if self._wake is not None:
            self._wake.set()

    def drain_threadsafe(self) -> None:
        """`drain` from any thread or a signal handler (scheduled on the event loop)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.drain)

    async def stop(self) -> None:
        """Drain, wait for the running batch, and stop the worker thread."""
        self.drain()
        if self._task is not None:
            await self._task
        self.executor.shutdown(wait=True)

    def fail(self, exc: BaseException) -> None:
        """The batch loop cannot go on: log why, answer running and queued requests with an error, stop taking more."""
        cause = str(exc) if isinstance(exc, EdpilotError) else f"{type(exc).__name__}: {exc}"
        log.error(
            "the server failed: %s; answering every request with an error and stopping",
            cause,
            exc_info=not isinstance(exc, EdpilotError | OSError),
        )
        self.failure = self.failure or cause  # the first failure is the cause; later ones are logged
        self.draining = True
        error = Unavailable(f"the server failed and is stopping: {self.failure}")
        _refuse([*self._running, *self.batcher.flush()], error)
        self._running = []
        self.metrics.queue_depth.set(0)
        if self.on_failure is not None:
            self.on_failure()

    async def _run(self) -> None:
        try:
            await self._batches()
        except Exception as exc:  # noqa: BLE001 - whatever stops the loop stops the server, loudly
            self.fail(exc)

    async def _batches(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            batch = self.batcher.poll(self.clock.now_s())
            if batch is not None:
                self.metrics.queue_depth.set(len(self.batcher))
                live = [p for p in batch if not p.cancelled]
                self.metrics.dropped.inc(len(batch) - len(live))
                if live:
                    await self._serve(loop, live)
                continue
            if self.draining:
                return
            deadline_s = self.batcher.next_deadline_s()
            timeout_s = (
                None if deadline_s is None else max(0.0, deadline_s - self.clock.now_s()) * self.wall_per_clock_s
            )
            try:
                await asyncio.wait_for(self._wake.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass

    async def _serve(self, loop: asyncio.AbstractEventLoop, batch: list[Pending]) -> None:
        requests = [p.request for p in batch]
        start_s = self.clock.now_s()
        self._running = batch
        sink = TokenRelay(self.clock, self.metrics, batch).on_token
        result: BatchResult = await loop.run_in_executor(self.executor, self.driver.serve, requests, sink)
        self._running = []
        done_s = self.clock.now_s()
        self._mean_batch_s = 0.8 * self._mean_batch_s + 0.2 * (done_s - start_s)
        if result.batch_size != self.batcher.batch_size:
            self.batcher.set_batch_size(result.batch_size)
        for pending, completion, energy_j in zip(batch, result.completions, result.energy_j):
            latency_s = done_s - pending.arrival_s
            if completion.error is None:
                self.metrics.latency_s.observe(latency_s)
            answer = Answer(completion.text, completion.output_tokens, energy_j, latency_s, completion.error)
            if pending.cancelled or pending.future.done():
                self.metrics.dropped.inc()
                continue
            pending.finish(answer)


def _refuse(pendings: list[Pending], error: Unavailable) -> None:
    """Answer each waiting request with `error`; one whose client went away has nobody to read it."""
    for pending in pendings:
        if pending.future.done():
            continue
        if pending.cancelled:
            pending.future.cancel()
            pending.pieces.end()
        else:
            pending.finish(error)


class TokenRelay:
    """Hands tokens from the engine's thread to each request's stream on the event loop; stamps TTFT and gaps."""

    def __init__(self, clock: Clock, metrics: ServerMetrics, batch: Sequence[Pending]) -> None:
        self.clock, self.metrics, self.batch = clock, metrics, batch

    def on_token(self, index: int, text: str) -> None:
        """Request `index` of the batch has new text (called on the engine's thread)."""
        self.relay(self.batch[index], text)

    def relay(self, pending: Pending, text: str) -> None:
        """`pending` has new text: stamp it, observe TTFT or the gap since its last token, queue the text."""
        now_s = self.clock.now_s()
        if pending.first_token_s is None:
            pending.first_token_s = now_s
            self.metrics.ttft_s.observe(now_s - pending.arrival_s)
            if pending.on_first_token is not None:
                pending.on_first_token()
        elif pending.last_token_s is not None:
            self.metrics.itl_s.observe(now_s - pending.last_token_s)
        pending.last_token_s = now_s
        if text and not pending.cancelled:
            pending.pieces.put_threadsafe(text)
