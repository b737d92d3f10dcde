"""Answering one completion request: check it, queue it, wait for its batch, send it whole or streamed (SSE).

Streamed answers send their headers at once and each piece of text as the engine makes it (one SSE chunk per
decode step, or per upstream chunk through a gateway; chunks that are already waiting go out in one write), then
the finish reason and usage when the request ends.
A client that goes away while waiting has its request dropped.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.sse import format_sse_event

from edpilot.run import MAX_OUTPUT_TOKENS
from edpilot.server import protocol as p
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
    rid = p.new_id("chatcmpl" if chat else "cmpl")
    endpoint = request.url.path
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    if body.stream:
        stream = _stream(
            service,
            pending,
            rid=rid,
            chat=chat,
            max_tokens=max_tokens,
            prompt_tokens=prompt_tokens,
            include_usage=include_usage,
            endpoint=endpoint,
        )
        return StreamingResponse(stream, media_type="text/event-stream")
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
    while (await request.receive())["type"] != "http.disconnect":
        pass


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


async def _stream(
    service: Service,
    pending: Pending,
    *,
    rid: str,
    chat: bool,
    max_tokens: int,
    prompt_tokens: int,
    include_usage: bool,
    endpoint: str,
) -> AsyncIterator[bytes]:
    model = service.model_id

    def event(data: dict[str, Any] | str) -> bytes:
        return format_sse_event(data_str=data if isinstance(data, str) else json.dumps(data))

    try:
        if chat:
            yield event(p.chunk(rid=rid, model=model, chat=True, role=True))
        sent: list[str] = []
        async for texts in _waiting_pieces(pending):
            sent += texts
            yield b"".join(event(p.chunk(rid=rid, model=model, chat=chat, text=text)) for text in texts)
        try:
            answer = _result(pending)
        except p.ApiError as exc:
            service.metrics.requests.labels(endpoint, str(exc.status)).inc()
            yield event(exc.body())
            return
        streamed = "".join(sent)
        rest = answer.text[len(streamed) :] if answer.text.startswith(streamed) else ""  # an engine that streams none
        tail = [p.chunk(rid=rid, model=model, chat=chat, text=piece) for piece in (p.pieces(rest) if rest else ())]
        tail.append(p.chunk(rid=rid, model=model, chat=chat, reason=p.finish_reason(answer.output_tokens, max_tokens)))
        if include_usage:
            usage = p.usage(prompt_tokens, answer.output_tokens, answer.energy_j)
            tail.append(p.chunk(rid=rid, model=model, chat=chat, usage_=usage))
        _count(service, endpoint, prompt_tokens, answer)
        yield b"".join([*(event(data) for data in tail), event("[DONE]")])  # the end in one write
    finally:
        if not pending.future.done():
            pending.cancel()


async def _waiting_pieces(pending: Pending) -> AsyncIterator[list[str]]:
    """The request's text as it is made: each time, every piece that has arrived (at least one)."""
    queue = pending.pieces
    while (piece := await queue.get()) is not None:
        texts = [piece]
        while not queue.empty():
            piece = queue.get_nowait()
            if piece is None:
                yield texts
                return
            texts.append(piece)
        yield texts
