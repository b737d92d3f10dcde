"""The core's continuous scheduler, live: requests join the running sequences at the next decode step.

`submit` (on the event loop) stamps the arrival and puts the request in an inbox; one worker thread owns the
sans-IO `ContinuousScheduler` and the engine's sequences: before each step it admits queued requests into free
slots (the config's `batch_size` is the most sequences at once), runs the step through `ServingDriver.step`
(measured for the round), hands each running request its new text and settles the ones that ended. With
nothing running it sleeps until a request arrives, so a lone request starts at once. Each request's energy is
its share of every step it was in (step energy ÷ sequences in the step). `drain` answers the queued requests
with an error and lets the running ones finish.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from edpilot.clock import Clock
from edpilot.continuous_runner import ServedRequest, warm_up
from edpilot.engine.base import Gateway, SequenceEngine
from edpilot.errors import EdpilotError
from edpilot.server.driver import ServingDriver
from edpilot.server.estimator import TrafficEstimator
from edpilot.server.metrics import ServerMetrics
from edpilot.server.worker import Answer, Pending, QueueFull, TokenRelay, Unavailable
from edpilot.serving.continuous import ContinuousScheduler
from edpilot.workload import Request

log = logging.getLogger(__name__)


class LiveContinuous:
    """Inbox, step loop and worker thread around one ServingDriver and a SequenceEngine."""

    def __init__(
        self,
        driver: ServingDriver,
        engine: SequenceEngine,
        *,
        clock: Clock,
        wall_per_clock_s: float,
        max_queue: int,
        estimator: TrafficEstimator,
        metrics: ServerMetrics,
    ) -> None:
        self.driver, self.engine, self.clock, self.wall_per_clock_s = driver, engine, clock, wall_per_clock_s
        self.max_queue, self.estimator, self.metrics = max_queue, estimator, metrics
        self.batcher: ContinuousScheduler[Pending] = ContinuousScheduler(driver.config.batch_size)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edpilot-steps")
        self.draining = False
        self.failure: str | None = None  # set only by `fail` (an engine failure ends its requests, not the server)
        self.on_failure: Callable[[], None] | None = None
        self._ids = itertools.count()
        self._inbox: deque[Pending] = deque()
        self._wake = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[None] | None = None
        self._mean_request_s = 1.0
        self._relay = TokenRelay(clock, metrics, ())
        self._running: dict[int, tuple[Pending, float]] = {}  # request id -> (pending, when it joined)

    async def start(self) -> None:
        """Open the first round on the worker thread and start the step loop there."""
        self._loop = loop = asyncio.get_running_loop()
        if isinstance(self.engine, Gateway):
            self.engine.send_text_to(self._relay_text)
        if self.engine.needs_warmup:
            slots = max(self.driver.session.space.batch_sizes)
            steps = await loop.run_in_executor(self.executor, warm_up, self.engine, slots)
            log.info("warm-up: %d sequences through %d untimed steps before the first round", slots, steps)
        config = await loop.run_in_executor(self.executor, self.driver.start)
        self.batcher.set_slots(config.batch_size)
        self._task = loop.run_in_executor(self.executor, self._run)

    def submit(self, prompt: str, *, prompt_tokens: int, max_new_tokens: int) -> Pending:
        """Queue one request (on the event loop); raises Unavailable or QueueFull."""
        if self.draining or self._task is None:
            raise Unavailable("the server is shutting down")
        queued = len(self.batcher) + len(self._inbox)
        if queued >= self.max_queue:
            waves = queued / self.batcher.slots + 1
            raise QueueFull(waves * self._mean_request_s * self.wall_per_clock_s)
        now_s = self.clock.now_s()
        request = Request(next(self._ids), now_s, prompt, prompt_tokens, max_new_tokens)
        pending = Pending(request, asyncio.get_running_loop().create_future())
        self._inbox.append(pending)
        self.metrics.queue_depth.set(queued + 1)
        change = self.estimator.observe(now_s, prompt_tokens=prompt_tokens, output_tokens=max_new_tokens)
        if change is not None:
            self.driver.offer_traffic(change)
        self._wake.set()
        self.engine.wake()
        return pending

    def drain(self) -> None:
        """Refuse new requests; the worker answers the queued ones with Unavailable and finishes the running ones."""
        if self.draining:
            return
        self.draining = True
        log.info("shutting down: queued requests are answered with an error; finishing the running ones")
        self._wake.set()
        self.engine.wake()

    def drain_threadsafe(self) -> None:
        """`drain` from any thread or a signal handler."""
        self.drain()

    def fail(self, exc: BaseException) -> None:
        """Starting or finishing failed (no step runs then): log why, say it in `failure`, stop taking requests."""
        cause = str(exc) if isinstance(exc, EdpilotError) else f"{type(exc).__name__}: {exc}"
        log.error("the server failed: %s; stopping", cause, exc_info=not isinstance(exc, EdpilotError | OSError))
        self.failure = self.failure or cause
        self.draining = True
        if self.on_failure is not None:
            self.on_failure()

    async def stop(self) -> None:
        """Drain, wait for the running sequences, and stop the worker thread."""
        self.drain()
        if self._task is not None:
            await self._task
        self.executor.shutdown(wait=True)

    def _run(self) -> None:
        """The step loop (worker thread)."""
        assert self._loop is not None
        running = self._running
        energy_j: dict[int, float | None] = {}
        while True:
            self._wake.clear()
            now_s = self.clock.now_s()
            while self._inbox:
                self.batcher.offer(self._inbox.popleft(), now_s)
            if self.draining:
                for pending in self.batcher.flush():
                    self._settle(pending, Unavailable("the server is shutting down"))
            for pending in self.batcher.poll(now_s):
                running[pending.request.request_id] = (pending, now_s)
                self.engine.add(pending.request)
                energy_j[pending.request.request_id] = 0.0
            for pending, _ in running.values():
                if pending.cancelled:
                    self.engine.cancel(pending.request.request_id)
            self.metrics.queue_depth.set(len(self.batcher))
            if self.engine.running() == 0:
                if self.draining:
                    return
                self.driver.pause()
                self._wake.wait()
                continue
            try:
                step, served_step = self.driver.step(self.engine, self.engine.running())
            except Exception as exc:  # an engine failure ends the running requests, never the server
                log.error("decode step of %d sequences failed: %s", len(running), exc)
                for pending, _ in running.values():
                    self._settle(pending, Answer("", 0, None, 0.0, f"{type(exc).__name__}: {exc}"))
                self.batcher.release(len(running))
                running.clear()
                continue
            share = None if served_step.energy_j is None else served_step.energy_j / max(served_step.sequences, 1)
            for rid in running:
                so_far_j = energy_j[rid]
                energy_j[rid] = None if share is None or so_far_j is None else so_far_j + share
            for rid, text in step.text.items():
                if rid in running:
                    self._relay.relay(running[rid][0], text)
            ended: list[ServedRequest] = []
            for rid, completion in step.finished.items():
                pending, joined_s = running.pop(rid)
                served = ServedRequest(pending.request, joined_s, served_step.end_s, completion)
                self._mean_request_s = 0.8 * self._mean_request_s + 0.2 * served.latency_s
                if completion.error is None:
                    self.metrics.latency_s.observe(served.latency_s)
                    ended.append(served)
                answer = Answer(
                    completion.text, completion.output_tokens, energy_j.pop(rid), served.latency_s, completion.error
                )
                if pending.cancelled:
                    self.metrics.dropped.inc()
                self._settle(pending, answer)
            self.batcher.release(len(step.finished))
            config = self.driver.finished(ended, backlog=len(self.batcher)) if ended else self.driver.config
            if config.batch_size != self.batcher.slots:
                self.batcher.set_slots(config.batch_size)

    def _relay_text(self, request_id: int, text: str) -> None:
        """A gateway's text, handed on as it arrives (on its event loop), outside the steps; a request whose client
        went away is cancelled here (no step comes to see it until a request finishes)."""
        held = self._running.get(request_id)
        if held is None:
            return
        if held[0].cancelled:
            self.engine.cancel(request_id)
        else:
            self._relay.relay(held[0], text)

    def _settle(self, pending: Pending, answer: Answer | BaseException) -> None:
        assert self._loop is not None
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(pending.finish, answer)
