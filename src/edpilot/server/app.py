"""The HTTP face of the server (FastAPI): OpenAI-compatible completions and chat, models, health, metrics.

Every error is answered in OpenAI's shape: invalid JSON 400, a field missing or of the wrong type 422,
a bad value (max_tokens, a prompt over the context) 400, an unknown model 404, a missing or wrong API key
401, a full queue 429 with Retry-After, shutting down 503. Streamed answers (SSE) send their headers at
once and the text when the batch is done (static batching: a batch ends together).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.sse import format_sse_event
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from edpilot.run import MAX_OUTPUT_TOKENS
from edpilot.server import protocol as p
from edpilot.server.metrics import ServerMetrics
from edpilot.server.worker import Answer, LiveBatcher, Pending, QueueFull, Unavailable

log = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499  # nobody reads it: the client is gone


@dataclass
class Service:
    """What the routes need: the live batcher, the model's name and context, metrics, the API key."""

    live: LiveBatcher
    model_id: str
    context_tokens: int
    count_tokens: Callable[[str], int]
    metrics: ServerMetrics
    api_key: str | None = None
    on_stop: Callable[[], Any] | None = None


def create_app(service: Service) -> FastAPI:
    """The FastAPI app around `service`; its lifespan starts and stops the batch loop."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.live.start()
        try:
            yield
        finally:
            await service.live.stop()
            if service.on_stop is not None:
                await asyncio.get_running_loop().run_in_executor(None, service.on_stop)

    app = FastAPI(title="edpilot", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(p.ApiError)
    async def api_error(request: Request, exc: p.ApiError) -> JSONResponse:
        service.metrics.requests.labels(request.url.path, str(exc.status)).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return await api_error(request, p.ApiError(exc.status_code, str(exc.detail), code="not_found"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return await api_error(request, p.ApiError(500, f"internal error: {type(exc).__name__}", type="server_error"))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        live = service.live
        return {"status": "draining" if live.draining else "ok", "queue": len(live.batcher), **_config(live)}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        _authorize(service, request)
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        _authorize(service, request)
        return {"object": "list", "data": [{"id": service.model_id, "object": "model", "owned_by": "edpilot"}]}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await _parse(service, request, p.CompletionBody)
        assert isinstance(body, p.CompletionBody)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise p.ApiError(400, "prompt must be one string (or a list of exactly one)", param="prompt")
        max_tokens = p.DEFAULT_COMPLETION_MAX_TOKENS if body.max_tokens is None else body.max_tokens
        return await _answer(service, request, body, prompts[0], max_tokens, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await _parse(service, request, p.ChatBody)
        assert isinstance(body, p.ChatBody)
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        max_tokens = p.DEFAULT_CHAT_MAX_TOKENS if max_tokens is None else max_tokens
        return await _answer(service, request, body, p.chat_prompt(body.messages), max_tokens, chat=True)

    return app


def _config(live: LiveBatcher) -> dict[str, Any]:
    c = live.driver.config
    return {"freq_mhz": c.freq_mhz, "batch_size": c.batch_size}


def _authorize(service: Service, request: Request) -> None:
    if service.api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), service.api_key.encode()):
        raise p.ApiError(401, "missing or wrong API key (Authorization: Bearer KEY)", code="invalid_api_key")


async def _parse(service: Service, request: Request, model: type[BaseModel]) -> BaseModel:
    _authorize(service, request)
    try:
        data = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise p.ApiError(400, "the body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise p.ApiError(400, "the body must be a JSON object", code="invalid_json")
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(x) for x in first["loc"]) or None
        raise p.ApiError(422, f"{param}: {first['msg']}", param=param, code="invalid_field") from None
    if body.model != service.model_id:  # type: ignore[attr-defined]
        raise p.ApiError(
            404,
            f"model {body.model!r} does not exist; this server serves {service.model_id!r}",  # type: ignore[attr-defined]
            param="model",
            code="model_not_found",
        )
    if body.n != 1:  # type: ignore[attr-defined]
        raise p.ApiError(400, "only n=1 is supported", param="n")
    return body


async def _answer(
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
        await asyncio.wait({pending.future, gone}, return_when=asyncio.FIRST_COMPLETED)
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
        await asyncio.wait({pending.future})
        try:
            answer = _result(pending)
        except p.ApiError as exc:
            service.metrics.requests.labels(endpoint, str(exc.status)).inc()
            yield event(exc.body())
            return
        for piece in p.pieces(answer.text):
            yield event(p.chunk(rid=rid, model=model, chat=chat, text=piece))
        reason = p.finish_reason(answer.output_tokens, max_tokens)
        yield event(p.chunk(rid=rid, model=model, chat=chat, reason=reason))
        if include_usage:
            yield event(
                p.chunk(
                    rid=rid,
                    model=model,
                    chat=chat,
                    usage_=p.usage(prompt_tokens, answer.output_tokens, answer.energy_j),
                )
            )
        yield event("[DONE]")
        _count(service, endpoint, prompt_tokens, answer)
    finally:
        if not pending.future.done():
            pending.cancel()
