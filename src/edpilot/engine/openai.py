"""`--engine openai:URL`: any OpenAI-compatible server (llama.cpp server, vLLM, Ollama, edpilot serve).

Every upstream stream runs as a task on one event loop over one pooled aiohttp session (`openai_upstream`):
connections are reused between batches, and each upstream chunk is handed on (`on_token`) as it arrives, with no
thread per request. A batch of b requests is sent concurrently to /v1/completions with streaming. As a
`SequenceEngine` (continuous batching) it is a gateway that caps concurrency: a request added is sent upstream at
once, and `step` waits for the next chunks of any running request (or, with a text sink, for requests to finish),
so the server behind it keeps its own slots. Each request has a total deadline (`request_timeout_s`), so a server
that trickles bytes cannot hold a batch longer; `close()` cancels in-flight requests at once. Output tokens come
from the server's `usage` (asked for with `stream_options.include_usage`); without it a request that stopped on
`finish_reason: "length"` produced exactly `max_tokens`, and otherwise the count falls back to streamed chunks
(logged once). An HTTP error, a timeout or an answer of the wrong shape fails that request with a clear error
text; nothing is raised.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import wait
from functools import partial
from urllib.parse import urlsplit

from edpilot.engine.base import Completion, DecodeHook, Step, TokenSink
from edpilot.engine.openai_upstream import CANCEL_WAIT_S, Call, Upstream, aiohttp_module
from edpilot.errors import ConfigError, EngineError
from edpilot.workload import Request

log = logging.getLogger(__name__)

FALLBACK_MODEL = "default"  # what servers that serve one model (llama.cpp) accept when no name is known


class OpenAIEngine:
    """Streams completions from an OpenAI-compatible HTTP server, b requests at once."""

    name = "openai"
    needs_warmup = False

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        request_timeout_s: float = 120.0,
        fixed_output_length: bool = True,
    ) -> None:
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--engine openai:URL needs an http(s) URL, got {base_url!r}")
        root = parts.path.rstrip("/").removesuffix("/v1")
        self.api_url = f"{parts.scheme}://{parts.netloc}{root}/v1"
        self.base_url, self.request_timeout_s = base_url, request_timeout_s
        self.fixed_output_length = fixed_output_length
        self._upstream = Upstream(
            self.api_url, request_timeout_s=request_timeout_s, fixed_output_length=fixed_output_length
        )
        self.clock = self._upstream.clock
        self._model, self._model_source = model, "option" if model else None
        self._active: set[Call] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._events: queue.SimpleQueue[tuple[Call, str | None] | None] = queue.SimpleQueue()  # C: cheap
        self._sequences: dict[int, tuple[Call, float]] = {}  # continuous: request id -> (call, start on the clock)
        self._text_sink: Callable[[int, str], None] | None = None  # continuous: text handed on outside `step`

    def share_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the upstream streams on `loop` from now on (a server's own: a chunk then wakes no other thread)."""
        self._upstream.share_loop(loop)

    async def leave_loop(self) -> None:
        """Close the pooled connections on the shared loop (its server is stopping); later requests, if any, run
        on a loop of the engine's own."""
        await self._upstream.leave_loop()

    def send_text_to(self, sink: Callable[[int, str], None]) -> None:
        """Continuous batching: hand each chunk's text to `sink(request_id, text)` on the engine's loop as it arrives;
        `step` then returns only when requests finish (or on `wake`)."""
        self._text_sink = sink

    def model_name(self) -> str:
        """The model name sent with each request: the option, else the first one the server lists."""
        if self._model is not None:
            return self._model
        if self._closed:
            raise EngineError("the openai engine is closed")
        try:
            self._model = self._upstream.submit(self._upstream.listed_model()).result()
            self._model_source = "server's /v1/models"
        except (aiohttp_module().ClientError, asyncio.TimeoutError) as exc:  # unreachable: ask again next batch
            log.warning("cannot ask %s/models for a model name (%s); sending %r", self.api_url, exc, FALLBACK_MODEL)
            return FALLBACK_MODEL
        if self._model is None:
            self._model, self._model_source = FALLBACK_MODEL, "fallback (server lists no models)"
        return self._model

    def generate(
        self, batch: Sequence[Request], on_token: TokenSink | None = None, *, on_decode: DecodeHook | None = None
    ) -> list[Completion]:
        """Send every request at once, handing on chunks as they come; wait for all, at most the request deadline.

        No `on_decode`: the server's prefill ends out of sight (ConfigError)."""
        if self._closed:
            raise EngineError("the openai engine is closed")
        if on_decode is not None:
            raise ConfigError("the openai engine cannot switch clocks per phase: its server's prefill ends unseen")
        model = self.model_name()
        calls = [Call(r, None if on_token is None else _indexed(on_token, i)) for i, r in enumerate(batch)]
        with self._lock:
            self._active.update(calls)
        start_s = self.clock.now_s()
        futures = [self._upstream.submit(self._upstream.run(call, model, start_s)) for call in calls]
        try:
            wait(futures, timeout=self.request_timeout_s + CANCEL_WAIT_S)  # each ends by its own deadline
        except BaseException:  # Ctrl-C or a signal: do not wait for the server
            for call in calls:
                call.cancel("cancelled", self._upstream.loop)
            raise
        finally:
            with self._lock:
                self._active.difference_update(calls)
        return [c.result or c.failed(c.cancel_reason or "request did not finish") for c in calls]

    def add(self, request: Request) -> None:
        """Continuous batching: send `request` upstream now; its chunks come back through `step`."""
        if self._closed:
            raise EngineError("the openai engine is closed")
        sink, rid = self._text_sink, request.request_id
        call = Call(request, (lambda text: self._events.put((call, text))) if sink is None else partial(sink, rid))
        start_s = self.clock.now_s()
        self._sequences[request.request_id] = (call, start_s)
        with self._lock:
            self._active.add(call)
        model = self.model_name()

        async def run() -> None:
            try:
                await self._upstream.run(call, model, start_s)
            finally:
                self._events.put((call, None))

        self._upstream.submit(run())

    def running(self) -> int:
        """Requests sent upstream and not answered yet."""
        return len(self._sequences)

    def cancel(self, request_id: int) -> None:
        """Stop reading a request's stream (its client went away); it finishes, failed, at a later step."""
        held = self._sequences.get(request_id)
        if held is not None:
            held[0].cancel("cancelled: the client went away", self._upstream.loop)

    def wake(self) -> None:
        """Make a blocked `step` return now (a request is waiting to be added)."""
        self._events.put(None)

    def step(self) -> Step:
        """Wait for the next upstream chunks (or a `wake`), then hand on everything that has arrived (with a text
        sink, only the requests that finished)."""
        if not self._sequences:
            return Step()
        text: dict[int, str] = {}
        finished: dict[int, Completion] = {}
        deadline_s = min(start_s for _, start_s in self._sequences.values()) + self.request_timeout_s + CANCEL_WAIT_S
        try:
            event = self._events.get(timeout=max(0.0, deadline_s - self.clock.now_s()))
        except queue.Empty:
            event = None
        if event is not None:
            self._take(event, text, finished)
        while not self._events.empty():  # the one reader of the queue: what it holds is there to take
            if (event := self._events.get_nowait()) is not None:
                self._take(event, text, finished)
        return Step(text, finished)

    def _take(self, event: tuple[Call, str | None], text: dict[int, str], finished: dict[int, Completion]) -> None:
        call, piece = event
        rid = call.request.request_id
        if piece is not None:
            text[rid] = text.get(rid, "") + piece
            return
        self._sequences.pop(rid, None)
        with self._lock:
            self._active.discard(call)
        finished[rid] = call.result or call.failed(call.cancel_reason or "request did not finish")

    def describe(self) -> dict[str, object]:
        """Server URL, the model name sent and where it came from, and the request deadline."""
        return {
            "backend": "openai",
            "url": self.api_url,
            "model": self.model_name(),
            "model_source": self._model_source or "fallback (server unreachable)",
            "request_timeout_s": self.request_timeout_s,
            "fixed_output_length": self.fixed_output_length,
        }

    def close(self) -> None:
        """Cancel in-flight requests now, close the connection pool and stop the engine's own loop; idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            active = list(self._active)
        for call in active:
            call.cancel("cancelled: the engine was closed", self._upstream.loop)
        self._upstream.close()


def _indexed(on_token: TokenSink, index: int) -> Callable[[str], None]:
    return lambda text: on_token(index, text)
