"""Answering one completion request: check it, queue it, wait for its batch, send it whole or streamed (SSE).

Streamed answers send their headers at once and each piece of text as the engine makes it (one SSE chunk per
decode step, or per upstream chunk through a gateway; chunks that are already waiting go out in one write), then
the finish reason and usage when the request ends.
A client that goes away while waiting has its request dropped.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from edpilot.engine.base import Gateway
from edpilot.run import MAX_OUTPUT_TOKENS
from edpilot.server import protocol as p
from edpilot.server.cpu_yield import CpuYield
from edpilot.server.metrics import ServerMetrics
from edpilot.server.worker import Answer, LiveBatcher, Pending, QueueFull, Unavailable

if TYPE_CHECKING:
    from edpilot.server.stepper import LiveContinuous

CLIENT_CLOSED_REQUEST = 499  # nobody reads it: the client is gone


@dataclass
class Service:
    """What the routes need: the live batcher, the model's name and context, metrics, the API key."""

    live: LiveBatcher | LiveContinuous
    model_id: str
    context_tokens: int
    count_tokens: Callable[[str], int]
    metrics: ServerMetrics
    api_key: str | None = None
    on_stop: Callable[[], Any] | None = None
    gateway: Gateway | None = None  # an engine that streams on the server's event loop while it runs
    cpu_yield: CpuYield | None = None  # a gateway in front of a server on this host: gives way while it relays


async def answer(
    service: Service, request: Request, body: Any, prompt: str, max_tokens: int, *, chat: bool
) -> Response:
    if not 1 <= max_tokens <= MAX_OUTPUT_TOKENS:
        raise p.ApiError(
            400, f"max_tokens must be between 1 and {MAX_OUTPUT_TOKENS}, got {max_tokens}", param="max_tokens"
        )
    if not prompt.strip():
        raise p.ApiError(400, "the prompt is empty", param="prompt")
    prompt_tokens = service.count_tokens(prompt)
    if prompt_tokens + max_tokens > service.context_tokens:
        raise p.ApiError(
            400,
            f"this model's context is {service.context_tokens} tokens; the prompt ({prompt_tokens}) plus max_tokens "
            f"({max_tokens}) do not fit",
            param="prompt" if prompt_tokens >= service.context_tokens else "max_tokens",
            code="context_length_exceeded",
        )
    try:
        pending = service.live.submit(prompt, prompt_tokens=prompt_tokens, max_new_tokens=max_tokens)
    except QueueFull as exc:
        retry = str(max(1, math.ceil(exc.retry_after_s)))
        raise p.ApiError(
            429,
            "the request queue is full; retry later",
            type="rate_limit_error",
            code="queue_full",
            headers={"Retry-After": retry},
        ) from None
    except Unavailable as exc:
        raise p.ApiError(503, str(exc), type="server_error", code="shutting_down") from None
    client_has_token = service.cpu_yield.track(pending) if service.cpu_yield is not None else None
    rid = p.new_id("chatcmpl" if chat else "cmpl")
    endpoint = request.url.path
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    if body.stream:
        events = p.ChunkEvents(rid=rid, model=service.model_id, chat=chat)
        stream = EventStream(service, pending, events, Asked(endpoint, max_tokens, prompt_tokens, include_usage))
        stream.on_first_text = client_has_token
        return stream
    pending.on_first_token = client_has_token
    answer = await _wait(request, pending)
    if answer is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    _count(service, endpoint, prompt_tokens, answer)
    return JSONResponse(
        p.completion_response(
            rid=rid,
            model=service.model_id,
            text=answer.text,
            reason=p.finish_reason(answer.output_tokens, max_tokens),
            usage_=p.usage(prompt_tokens, answer.output_tokens, answer.energy_j),
            chat=chat,
        )
    )


async def _wait(request: Request, pending: Pending) -> Answer | None:
    """The answer, or None when the client went away first (its request is dropped)."""
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        either: set[asyncio.Future[Any]] = {pending.future, gone}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not pending.future.done():
        pending.cancel()
        return None
    return _result(pending)


async def _disconnected(request: Request) -> None:
    await _gone(request.receive)


def _result(pending: Pending) -> Answer:
    try:
        answer = pending.future.result()
    except Unavailable as exc:
        raise p.ApiError(503, str(exc), type="server_error", code="shutting_down") from None
    if answer.error is not None:
        raise p.ApiError(502, f"the engine failed: {answer.error}", type="server_error", code="engine_error")
    return answer


def _count(service: Service, endpoint: str, prompt_tokens: int, answer: Answer) -> None:
    m = service.metrics
    m.requests.labels(endpoint, "200").inc()
    m.prompt_tokens.inc(prompt_tokens)
    m.completion_tokens.inc(answer.output_tokens)


class EventStream(Response):
    """A streamed answer (server-sent events) written straight to the connection: the headers at once, then all
    the text waiting each time in one write, then the end (finish reason, usage, `[DONE]`) in one write.

    A client that goes away has its request dropped (its engine request cancelled) at once."""

    media_type = "text/event-stream"

    def __init__(self, service: Service, pending: Pending, events: p.ChunkEvents, asked: Asked) -> None:
        super().__init__(media_type=self.media_type)
        self.raw_headers = [h for h in self.raw_headers if h[0] != b"content-length"]
        self.service, self.pending, self.events, self.asked = service, pending, events, asked
        self.on_first_text: Callable[[], None] | None = None  # called once the first text is written

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pending = self.pending
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        gone = asyncio.ensure_future(_gone(receive))
        gone.add_done_callback(lambda _: pending.pieces.end())  # wakes the writer below; cancelling does too
        try:
            end = await self._write(send, gone)
            if not gone.done():
                await send({"type": "http.response.body", "body": end, "more_body": False})
        finally:
            gone.cancel()
            if not pending.future.done():
                pending.cancel()

    async def _write(self, send: Any, gone: asyncio.Future[None]) -> bytes:
        """Send the text as it is made; return the last write (the end, or an error event)."""
        events, pending, asked = self.events, self.pending, self.asked
        if events.chat:
            await send(_body(events.event(events.chunk(role=True))))
        sent: list[str] = []
        while (texts := await pending.pieces.take()) is not None and not gone.done():
            sent += texts
            await send(_body(events.texts(texts)))
            if self.on_first_text is not None:
                self.on_first_text()
                self.on_first_text = None
        if gone.done():
            return b""
        try:
            answer = _result(pending)
        except p.ApiError as exc:
            self.service.metrics.requests.labels(asked.endpoint, str(exc.status)).inc()
            return events.event(exc.body())
        streamed = "".join(sent)
        rest = answer.text[len(streamed) :] if answer.text.startswith(streamed) else ""  # an engine that streams none
        end = [events.texts(p.pieces(rest))] if rest else []
        end.append(events.event(events.chunk(reason=p.finish_reason(answer.output_tokens, asked.max_tokens))))
        if asked.include_usage:
            usage = p.usage(asked.prompt_tokens, answer.output_tokens, answer.energy_j)
            end.append(events.event(events.chunk(usage_=usage)))
        _count(self.service, asked.endpoint, asked.prompt_tokens, answer)
        return b"".join([*end, events.event("[DONE]")])


@dataclass(frozen=True)
class Asked:
    """What a streamed request asked for, as its end needs it."""

    endpoint: str
    max_tokens: int
    prompt_tokens: int
    include_usage: bool


def _body(data: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": True}


async def _gone(receive: Any) -> None:
    """Returns when the client has gone (or the answer is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass
