"""`--engine openai:URL`: any OpenAI-compatible server (llama.cpp server, vLLM, Ollama, edpilot serve).

Every upstream stream runs as a task on one event loop of the engine's own (a daemon thread; uvloop where it is
installed), over one pooled aiohttp session: connections are reused between batches, and each upstream chunk is
parsed by aiohttp's C parser and handed on (`on_token`) as it arrives, with no thread per request. A batch of b
requests is sent concurrently to /v1/completions with streaming. As a `SequenceEngine` (continuous batching) it is a
gateway that caps concurrency: a request added is sent upstream at once, and `step` waits for the next chunks of
any running request, so the server behind it keeps its own slots. Each request has a total deadline
(`request_timeout_s`), so a server that trickles bytes cannot hold a batch longer; `close()` cancels in-flight
requests at once. Output tokens come from the server's `usage` (asked for with `stream_options.include_usage`);
without it a request that stopped on `finish_reason: "length"` produced exactly `max_tokens`, and otherwise the
count falls back to streamed chunks (logged once). An HTTP error, a timeout or an answer of the wrong shape fails
that request with a clear error text; nothing is raised.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future, wait
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from edpilot.clock import WallClock
from edpilot.engine.base import Completion, DecodeHook, Step, TokenSink
from edpilot.engine.openai_wire import SseData, WireError, parse_event
from edpilot.errors import ConfigError, EngineError
from edpilot.workload import Request

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # a server that does not accept within this is down (bounded by the request deadline)
CANCEL_WAIT_S = 2.0  # how long a cancelled request may take to end
ERROR_BODY_CHARS = 300
FALLBACK_MODEL = "default"  # what servers that serve one model (llama.cpp) accept when no name is known
JSON_BODY_BYTES = 1 << 22  # the most of a whole (non-streamed) answer read

T = TypeVar("T")


def _aiohttp() -> ModuleType:
    try:
        import aiohttp
    except ImportError:
        raise EngineError("the openai engine needs aiohttp: pip install 'edpilot[gateway]'") from None
    return aiohttp


class _Loop:
    """The event loop every upstream stream of one engine runs on: one it was given, else a daemon thread's own
    (started at the first request)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._given = loop
        self._own: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started if it is the engine's own and not running yet."""
        if self._given is not None:
            return self._given
        with self._lock:
            if self._own is None:
                try:
                    import uvloop

                    self._own = uvloop.new_event_loop()
                except ImportError:
                    self._own = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._own.run_forever, name="edpilot-openai", daemon=True)
                self._thread.start()
            return self._own

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run `coro` on the loop (from another thread); its result comes back through the future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Stop the engine's own loop, if it started one (after what is scheduled now), and wait for its thread."""
        if self._own is None or self._thread is None:
            return
        self._own.call_soon_threadsafe(self._own.stop)
        self._thread.join(timeout=CANCEL_WAIT_S)


class _Call:
    """One request in flight: its task on the engine's loop, what it streamed, and why it was cancelled."""

    def __init__(self, request: Request, on_text: Callable[[str], None] | None = None) -> None:
        self.request, self.on_text = request, on_text
        self.text: list[str] = []
        self.chunks = 0
        self.ttft_s: float | None = None
        self.last_token_s: float | None = None
        self.result: Completion | None = None
        self.cancel_reason: str | None = None
        self.task: asyncio.Task[None] | None = None

    def cancel(self, reason: str, loop: asyncio.AbstractEventLoop) -> None:
        """Make the request end now (from any thread), failed with `reason`."""
        if self.result is not None or self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._cancel_task)

    def _cancel_task(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def failed(self, error: str) -> Completion:
        """What it streamed so far, as a failed completion."""
        return Completion("".join(self.text), self.chunks, self.ttft_s, error=error)


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
        _aiohttp()
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--engine openai:URL needs an http(s) URL, got {base_url!r}")
        root = parts.path.rstrip("/").removesuffix("/v1")
        self.api_url = f"{parts.scheme}://{parts.netloc}{root}/v1"
        self.base_url, self.request_timeout_s = base_url, request_timeout_s
        self.fixed_output_length = fixed_output_length
        self._model, self._model_source = model, "option" if model else None
        self._loop = _Loop()
        self._session: aiohttp.ClientSession | None = None  # made on the loop, at the first request
        self._active: set[_Call] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._warned_chunks = False
        self.clock = WallClock()
        self._events: queue.SimpleQueue[tuple[_Call, str | None] | None] = queue.SimpleQueue()  # C: cheap
        self._sequences: dict[int, tuple[_Call, float]] = {}  # continuous: request id -> (call, start on the clock)
        self._text_sink: Callable[[int, str], None] | None = None  # continuous: text handed on outside `step`

    def share_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the upstream streams on `loop` from now on (a server's own: a chunk then wakes no other thread)."""
        self._close_session()
        self._loop.stop()
        self._loop = _Loop(loop)

    async def leave_loop(self) -> None:
        """Close the pooled connections on the shared loop (its server is stopping); later requests, if any, run
        on a loop of the engine's own."""
        session, self._session = self._session, None
        self._loop = _Loop()
        if session is not None:
            await session.close()

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            self._loop.submit(session.close()).result(timeout=CANCEL_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - closing is best effort
            log.debug("closing the upstream session: %s", exc)

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
            self._model = self._loop.submit(self._listed_model()).result()
            self._model_source = "server's /v1/models"
        except (_aiohttp().ClientError, asyncio.TimeoutError) as exc:  # unreachable: ask again next batch
            log.warning("cannot ask %s/models for a model name (%s); sending %r", self.api_url, exc, FALLBACK_MODEL)
            return FALLBACK_MODEL
        if self._model is None:
            self._model, self._model_source = FALLBACK_MODEL, "fallback (server lists no models)"
        return self._model

    async def _listed_model(self) -> str | None:
        timeout = _aiohttp().ClientTimeout(total=min(CONNECT_TIMEOUT_S, self.request_timeout_s))
        async with self._open_session().get(f"{self.api_url}/models", timeout=timeout) as resp:
            if resp.status != 200:
                return None
            try:
                return str((await resp.json(content_type=None))["data"][0]["id"])
            except (ValueError, LookupError, TypeError):
                return None

    def _open_session(self) -> aiohttp.ClientSession:
        """The pooled session (on the loop): no cap on connections, keep-alive, no total timeout of its own."""
        if self._session is None:
            aiohttp = _aiohttp()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(CONNECT_TIMEOUT_S, self.request_timeout_s)),
                auto_decompress=True,
            )
        return self._session

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
        calls = [_Call(r, None if on_token is None else _indexed(on_token, i)) for i, r in enumerate(batch)]
        with self._lock:
            self._active.update(calls)
        start_s = self.clock.now_s()
        futures = [self._loop.submit(self._run(call, model, start_s)) for call in calls]
        try:
            wait(futures, timeout=self.request_timeout_s + CANCEL_WAIT_S)  # each ends by its own deadline
        except BaseException:  # Ctrl-C or a signal: do not wait for the server
            for call in calls:
                call.cancel("cancelled", self._loop.loop)
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
        call = _Call(request, (lambda text: self._events.put((call, text))) if sink is None else partial(sink, rid))
        start_s = self.clock.now_s()
        self._sequences[request.request_id] = (call, start_s)
        with self._lock:
            self._active.add(call)
        model = self.model_name()

        async def run() -> None:
            try:
                await self._run(call, model, start_s)
            finally:
                self._events.put((call, None))

        self._loop.submit(run())

    def running(self) -> int:
        """Requests sent upstream and not answered yet."""
        return len(self._sequences)

    def cancel(self, request_id: int) -> None:
        """Stop reading a request's stream (its client went away); it finishes, failed, at a later step."""
        held = self._sequences.get(request_id)
        if held is not None:
            held[0].cancel("cancelled: the client went away", self._loop.loop)

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

    def _take(self, event: tuple[_Call, str | None], text: dict[int, str], finished: dict[int, Completion]) -> None:
        call, piece = event
        rid = call.request.request_id
        if piece is not None:
            text[rid] = text.get(rid, "") + piece
            return
        self._sequences.pop(rid, None)
        with self._lock:
            self._active.discard(call)
        finished[rid] = call.result or call.failed(call.cancel_reason or "request did not finish")

    async def _run(self, call: _Call, model: str, start_s: float) -> None:
        """Stream one request under its deadline (on the loop); its outcome, whatever it is, goes to `result`."""
        aiohttp = _aiohttp()
        call.task = asyncio.current_task()
        if call.cancel_reason is not None:
            call.result = call.failed(call.cancel_reason)
            return
        deadline = f"timed out: no complete answer within the {self.request_timeout_s:g} s request deadline"
        try:
            completion = await asyncio.wait_for(self._stream(call, model, start_s), self.request_timeout_s)
        except asyncio.CancelledError:
            completion = call.failed(call.cancel_reason or "cancelled")
        except asyncio.TimeoutError:
            completion = call.failed(deadline)
        except WireError as exc:
            completion = call.failed(str(exc))
        except aiohttp.ClientError as exc:
            completion = call.failed(call.cancel_reason or f"{type(exc).__name__}: {exc or 'no detail'}")
        call.result = completion

    async def _stream(self, call: _Call, model: str, start_s: float) -> Completion:
        request = call.request
        body: dict[str, object] = {
            "model": model,
            "prompt": request.prompt,
            "max_tokens": request.max_new_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.fixed_output_length:
            body["ignore_eos"] = True  # vLLM and llama.cpp server honour it; others ignore it
        usage, finish, done = None, None, False
        async with self._open_session().post(f"{self.api_url}/completions", json=body) as resp:
            if resp.status != 200:
                detail = (await resp.content.read(ERROR_BODY_CHARS)).decode("utf-8", "replace").strip()
                return Completion("", 0, None, error=f"HTTP {resp.status}: {detail}")
            if resp.content_type == "application/json":  # the server ignored stream=True
                whole = parse_event((await resp.content.read(JSON_BODY_BYTES)).decode("utf-8", "replace"))
                tokens = self._tokens(whole.completion_tokens, whole.finish_reason, request, 1)
                if call.on_text is not None and whole.text:
                    call.on_text(whole.text)
                at_s = self.clock.now_s() - start_s
                return Completion(whole.text, tokens, at_s, last_token_s=at_s)
            events = SseData()
            async for piece in resp.content.iter_any():
                for data in events.feed(piece):
                    if done:  # read to the end of the body so that the connection can be reused
                        continue
                    if data == "[DONE]":
                        done = True
                        continue
                    chunk = parse_event(data)
                    usage = chunk.completion_tokens if chunk.completion_tokens is not None else usage
                    finish = chunk.finish_reason or finish
                    if chunk.text:
                        call.last_token_s = self.clock.now_s() - start_s
                        if call.ttft_s is None:
                            call.ttft_s = call.last_token_s
                        call.chunks += 1
                        call.text.append(chunk.text)
                        if call.on_text is not None:
                            call.on_text(chunk.text)
            done = done or "[DONE]" in events.end()
        if not done and finish is None:
            raise WireError(f"the stream ended before [DONE] after {call.chunks} chunks")
        tokens = self._tokens(usage, finish, request, call.chunks)
        return Completion("".join(call.text), tokens, call.ttft_s, last_token_s=call.last_token_s)

    def _tokens(self, usage: int | None, finish: str | None, request: Request, chunks: int) -> int:
        if usage is not None:
            return usage
        if finish == "length":
            return request.max_new_tokens  # stopped because it produced exactly max_tokens
        if not self._warned_chunks:
            self._warned_chunks = True
            log.warning("%s sends no token usage: counting streamed chunks as tokens", self.api_url)
        return chunks

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
            call.cancel("cancelled: the engine was closed", self._loop.loop)
        self._close_session()
        self._loop.stop()


def _indexed(on_token: TokenSink, index: int) -> Callable[[str], None]:
    return lambda text: on_token(index, text)
