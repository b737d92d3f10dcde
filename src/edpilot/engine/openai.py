"""`--engine openai:URL`: any OpenAI-compatible server (llama.cpp server, vLLM, Ollama, edpilot serve).

A batch of b requests is sent concurrently to /v1/completions with streaming over one pooled httpx client
(connections are reused between batches, and so are the threads that read them); each upstream chunk is handed on
(`on_token`) as it arrives. As a `SequenceEngine` (continuous batching) it is a gateway that caps concurrency: a
request added is sent upstream at once, and `step` waits for the next chunks of any running request, so the server
behind it keeps its own slots. Each request has a total deadline (`request_timeout_s`), so a server that trickles
bytes cannot hold a batch longer; `close()` cancels in-flight requests at once by shutting their sockets. Output
tokens come from the server's `usage` (asked for with `stream_options.include_usage`); without it a request that
stopped on `finish_reason: "length"` produced exactly `max_tokens`, and otherwise the count falls back to streamed
chunks (logged once). An HTTP error, a timeout or an answer of the wrong shape fails that request with a clear
error text; nothing is raised.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from edpilot.clock import WallClock
from edpilot.engine.base import Completion, DecodeHook, Step, TokenSink
from edpilot.engine.openai_wire import WireError, parse_event, sse_data
from edpilot.errors import ConfigError, EngineError
from edpilot.workload import Request

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 1024  # reader threads at most; requests beyond wait for one (each still under its deadline)
CONNECT_TIMEOUT_S = 10.0  # a server that does not accept within this is down (bounded by the request deadline)
CANCEL_WAIT_S = 2.0  # how long a cancelled request may take to notice its socket is shut
ERROR_BODY_CHARS = 300
FALLBACK_MODEL = "default"  # what servers that serve one model (llama.cpp) accept when no name is known


def _httpx() -> ModuleType:
    try:
        import httpx
    except ImportError:
        raise EngineError("the openai engine needs httpx: pip install httpx") from None
    return httpx


class _Call:
    """One request in flight: its response once headers arrive, and why it was cancelled, if it was."""

    def __init__(self, request: Request, on_text: Callable[[str], None] | None = None) -> None:
        self.request, self.on_text = request, on_text
        self.text: list[str] = []
        self.chunks = 0
        self.ttft_s: float | None = None
        self.last_token_s: float | None = None
        self.result: Completion | None = None
        self.cancel_reason: str | None = None
        self._response: httpx.Response | None = None
        self._lock = threading.Lock()

    def attach(self, response: httpx.Response) -> None:
        """Remember the live response; shut it at once if the call was cancelled meanwhile."""
        with self._lock:
            self._response = response
            if self.cancel_reason is not None:
                _shut(response)

    def cancel(self, reason: str) -> None:
        """Make the worker stop now: its blocked read returns and the request fails with `reason`."""
        with self._lock:
            if self.result is not None or self.cancel_reason is not None:
                return
            self.cancel_reason = reason
            if self._response is not None:
                _shut(self._response)


def _shut(response: httpx.Response) -> None:
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


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
        httpx = _httpx()
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--engine openai:URL needs an http(s) URL, got {base_url!r}")
        root = parts.path.rstrip("/").removesuffix("/v1")
        self.api_url = f"{parts.scheme}://{parts.netloc}{root}/v1"
        self.base_url, self.request_timeout_s = base_url, request_timeout_s
        self.fixed_output_length = fixed_output_length
        self._model, self._model_source = model, "option" if model else None
        logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request at INFO: a line per request
        self._client = httpx.Client(
            timeout=httpx.Timeout(request_timeout_s, connect=min(CONNECT_TIMEOUT_S, request_timeout_s)),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self._pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="edpilot-openai")
        self._active: set[_Call] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._warned_chunks = False
        self.clock = WallClock()
        self._events: queue.SimpleQueue[tuple[_Call, str | None] | None] = queue.SimpleQueue()  # C: cheap
        self._sequences: dict[int, tuple[_Call, float]] = {}  # continuous: request id -> (call, start on the clock)

    def model_name(self) -> str:
        """The model name sent with each request: the option, else the first one the server lists."""
        if self._model is not None:
            return self._model
        httpx = _httpx()
        try:
            resp = self._client.get(f"{self.api_url}/models", timeout=min(CONNECT_TIMEOUT_S, self.request_timeout_s))
        except httpx.HTTPError as exc:  # unreachable: ask again next batch; its requests will say why they failed
            log.warning("cannot ask %s/models for a model name (%s); sending %r", self.api_url, exc, FALLBACK_MODEL)
            return FALLBACK_MODEL
        try:
            self._model = str(resp.json()["data"][0]["id"]) if resp.status_code == 200 else None
            self._model_source = "server's /v1/models"
        except (ValueError, LookupError, TypeError):
            self._model = None
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
        calls = [_Call(r, None if on_token is None else _indexed(on_token, i)) for i, r in enumerate(batch)]
        with self._lock:
            self._active.update(calls)
        start_s = self.clock.now_s()
        futures = [self._pool.submit(self._run, call, model, start_s) for call in calls]
        try:
            _, pending = wait(futures, timeout=self.request_timeout_s)
            if pending:
                reason = f"timed out: no complete answer within the {self.request_timeout_s:g} s request deadline"
                for call in calls:
                    call.cancel(reason)
                wait(pending, timeout=CANCEL_WAIT_S)
        except BaseException:  # Ctrl-C or a signal: do not wait for the server
            for call in calls:
                call.cancel("cancelled")
            raise
        finally:
            for future in futures:
                future.cancel()  # one still waiting for a thread does not start
            with self._lock:
                self._active.difference_update(calls)
        return [c.result or Completion("", 0, None, error=c.cancel_reason or "request did not finish") for c in calls]

    def add(self, request: Request) -> None:
        """Continuous batching: send `request` upstream now; its chunks come back through `step`."""
        if self._closed:
            raise EngineError("the openai engine is closed")
        call = _Call(request, lambda text: self._events.put((call, text)))
        start_s = self.clock.now_s()
        self._sequences[request.request_id] = (call, start_s)
        with self._lock:
            self._active.add(call)
        model = self.model_name()

        def run() -> None:
            try:
                self._run(call, model, start_s)
            finally:
                self._events.put((call, None))

        try:
            self._pool.submit(run)
        except RuntimeError:  # closed meanwhile
            raise EngineError("the openai engine is closed") from None

    def running(self) -> int:
        """Requests sent upstream and not answered yet."""
        return len(self._sequences)

    def cancel(self, request_id: int) -> None:
        """Stop reading a request's stream (its client went away); it finishes, failed, at a later step."""
        held = self._sequences.get(request_id)
        if held is not None:
            held[0].cancel("cancelled: the client went away")

    def wake(self) -> None:
        """Make a blocked `step` return now (a request is waiting to be added)."""
        self._events.put(None)

    def step(self) -> Step:
        """Wait for the next upstream chunks (or a `wake`), then hand on everything that has arrived."""
        if not self._sequences:
            return Step()
        text: dict[int, str] = {}
        finished: dict[int, Completion] = {}
        deadline_s = min(start_s for _, start_s in self._sequences.values()) + self.request_timeout_s
        try:
            event = self._events.get(timeout=max(0.0, deadline_s - self.clock.now_s()))
        except queue.Empty:
            event = None
        if event is not None:
            self._take(event, text, finished)
        while not self._events.empty():  # the one reader of the queue: what it holds is there to take
            if (event := self._events.get_nowait()) is not None:
                self._take(event, text, finished)
        now_s = self.clock.now_s()
        for call, start_s in self._sequences.values():
            if now_s - start_s >= self.request_timeout_s:
                call.cancel(f"timed out: no complete answer within the {self.request_timeout_s:g} s request deadline")
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
        finished[rid] = call.result or Completion("", 0, None, error=call.cancel_reason or "request did not finish")

    def _run(self, call: _Call, model: str, start_s: float) -> None:
        httpx = _httpx()
        try:
            completion = self._stream(call, model, start_s)
        except WireError as exc:
            completion = Completion("".join(call.text), call.chunks, call.ttft_s, error=str(exc))
        except httpx.HTTPError as exc:
            reason = call.cancel_reason or f"{type(exc).__name__}: {exc or 'no detail'}"
            completion = Completion("".join(call.text), call.chunks, call.ttft_s, error=reason)
        if call.cancel_reason is not None and completion.error is None:
            completion = Completion(completion.text, completion.output_tokens, completion.ttft_s, call.cancel_reason)
        with call._lock:
            call.result = completion

    def _stream(self, call: _Call, model: str, start_s: float) -> Completion:
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
        with self._client.stream("POST", f"{self.api_url}/completions", json=body) as resp:
            call.attach(resp)
            if resp.status_code != 200:
                detail = _read_some(resp).decode("utf-8", "replace").strip()
                return Completion("", 0, None, error=f"HTTP {resp.status_code}: {detail}")
            if resp.headers.get("content-type", "").startswith("application/json"):  # server ignored stream=True
                whole = parse_event(_read_some(resp, limit=1 << 22).decode("utf-8", "replace"))
                tokens = self._tokens(whole.completion_tokens, whole.finish_reason, request, 1)
                if call.on_text is not None and whole.text:
                    call.on_text(whole.text)
                at_s = self.clock.now_s() - start_s
                return Completion(whole.text, tokens, at_s, last_token_s=at_s)
            plain = resp.headers.get("content-encoding", "identity") == "identity"
            for data in sse_data(resp.iter_raw() if plain else resp.iter_bytes()):
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
        """Cancel in-flight requests now and close the connection pool; idempotent."""
        self._closed = True
        with self._lock:
            active = list(self._active)
        for call in active:
            call.cancel("cancelled: the engine was closed")
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def _indexed(on_token: TokenSink, index: int) -> Callable[[str], None]:
    return lambda text: on_token(index, text)


def _read_some(resp: httpx.Response, limit: int = ERROR_BODY_CHARS) -> bytes:
    out = b""
    for piece in resp.iter_bytes():
        out += piece
        if len(out) >= limit:
            break
    return out[:limit]
