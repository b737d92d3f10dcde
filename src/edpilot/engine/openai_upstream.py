"""Talking to an OpenAI-compatible server: every request a task on one event loop, over one pooled aiohttp session.

The loop is the engine's own (a daemon thread, uvloop where it is installed, started at the first request) or one
it is lent (`share_loop`: a server's, so that a chunk is read, relayed and written by one thread). Each upstream
chunk is parsed by aiohttp's C parser and handed on (`Call.on_text`) as it arrives. A request streams under a total
deadline; its outcome, whatever it is, becomes a `Completion` (an HTTP error, a timeout, a cancellation or an answer
of the wrong shape is that request's error text; nothing is raised).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from edpilot.clock import WallClock
from edpilot.engine.base import Completion
from edpilot.engine.openai_wire import SseData, WireError, parse_event
from edpilot.errors import EngineError
from edpilot.workload import Request

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # a server that does not accept within this is down (bounded by the request deadline)
CANCEL_WAIT_S = 2.0  # how long a cancelled request may take to end
ERROR_BODY_CHARS = 300
JSON_BODY_BYTES = 1 << 22  # the most of a whole (non-streamed) answer read

T = TypeVar("T")


def aiohttp_module() -> ModuleType:
    """aiohttp, or EngineError naming the extra that brings it."""
    try:
        import aiohttp
    except ImportError:
        raise EngineError("the openai engine needs aiohttp: pip install 'edpilot[gateway]'") from None
    return aiohttp


class EventLoop:
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


class Call:
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


class Upstream:
    """One server's /v1 API: the loop its requests run on, the pooled session, and one request's stream."""

    def __init__(self, api_url: str, *, request_timeout_s: float, fixed_output_length: bool) -> None:
        aiohttp_module()
        self.api_url, self.request_timeout_s, self.fixed_output_length = api_url, request_timeout_s, fixed_output_length
        self.events = EventLoop()
        self.clock = WallClock()
        self._session: aiohttp.ClientSession | None = None  # made on the loop, at the first request
        self._warned_chunks = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the requests run on."""
        return self.events.loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run `coro` on the loop (from another thread)."""
        return self.events.submit(coro)

    def share_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the requests on `loop` from now on."""
        self.close()
        self.events = EventLoop(loop)

    async def leave_loop(self) -> None:
        """Close the pooled connections on the shared loop (its owner is stopping); later requests, if any, run
        on a loop of its own."""
        session, self._session = self._session, None
        self.events = EventLoop()
        if session is not None:
            await session.close()

    def close(self) -> None:
        """Close the pooled connections and stop the loop if it is its own."""
        session, self._session = self._session, None
        if session is not None:
            try:
                self.submit(session.close()).result(timeout=CANCEL_WAIT_S)
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("closing the upstream session: %s", exc)
        self.events.stop()

    async def listed_model(self) -> str | None:
        """The first model id the server lists at /models; None when it lists none."""
        timeout = aiohttp_module().ClientTimeout(total=min(CONNECT_TIMEOUT_S, self.request_timeout_s))
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
            aiohttp = aiohttp_module()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(CONNECT_TIMEOUT_S, self.request_timeout_s)),
                auto_decompress=True,
            )
        return self._session

    async def run(self, call: Call, model: str, start_s: float) -> None:
        """Stream one request under its deadline (on the loop); its outcome, whatever it is, goes to `result`."""
        aiohttp = aiohttp_module()
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

    async def _stream(self, call: Call, model: str, start_s: float) -> Completion:
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
