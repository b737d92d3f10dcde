"""The HTTP face of the server (FastAPI): OpenAI-compatible completions and chat, models, health, metrics, OpenAPI.

Every error is answered in OpenAI's shape: invalid JSON (or text that is not valid Unicode, or a number past
JSON's limits) 400, a field missing or of the wrong type 422, a bad value (max_tokens, a prompt over the
context) 400, an unknown model 404, an unknown path 404, a wrong method 405 with `Allow`, a missing or wrong
API key 401, a request that did not arrive in time 408, a full queue 429 with Retry-After, shutting down or
failed 503, an engine failure 502. `/openapi.json` describes all of it, so generated clients and schema-driven
testers work. Request counts are labelled by route template (an unknown path is `unmatched`), so no client can
grow /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from edpilot import __version__
from edpilot.server import protocol as p
from edpilot.server.service import Service, answer
from edpilot.server.worker import LiveBatcher

if TYPE_CHECKING:
    from edpilot.server.stepper import LiveContinuous

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"  # the endpoint label of every path no route serves
HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def create_app(service: Service) -> FastAPI:
    """The FastAPI app around `service`; its lifespan starts and stops the batch loop."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        live = service.live
        try:
            if service.gateway is not None:
                service.gateway.share_loop(asyncio.get_running_loop())
            if service.cpu_yield is not None:
                service.cpu_yield.start()
            await live.start()
        except Exception as exc:  # noqa: BLE001 - e.g. the first clock write: say why, and stop
            live.fail(exc)
            yield
            return
        try:
            yield
        finally:
            await live.stop()
            if service.cpu_yield is not None:
                service.cpu_yield.stop()
            if service.gateway is not None:
                await service.gateway.leave_loop()
            if service.on_stop is not None:
                try:
                    await asyncio.get_running_loop().run_in_executor(None, service.on_stop)
                except Exception as exc:  # noqa: BLE001 - e.g. the summary on a full disk: one line, exit 2
                    live.fail(exc)

    completion_body = p.request_body(p.CompletionBody, {"model": service.model_id, **p.COMPLETION_EXAMPLE})
    chat_body = p.request_body(p.ChatBody, {"model": service.model_id, **p.CHAT_EXAMPLE})
    app = FastAPI(title="edpilot", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(p.ApiError)
    async def api_error(request: Request, exc: p.ApiError) -> JSONResponse:
        service.metrics.requests.labels(endpoint_label(request), str(exc.status)).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = p.ApiError(
            exc.status_code, str(exc.detail), code=HTTP_CODES.get(exc.status_code), headers=dict(exc.headers or {})
        )
        return await api_error(request, error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", endpoint_label(request))
        return await api_error(request, p.ApiError(500, f"internal error: {type(exc).__name__}", type="server_error"))

    @app.get("/healthz", responses=p.HEALTH_RESPONSES)
    async def healthz() -> JSONResponse:
        live = service.live
        status = "failed" if live.failure is not None else "draining" if live.draining else "ok"
        body: dict[str, Any] = {"status": status, "queue": len(live.batcher), **_config(live), **live.driver.status}
        if live.failure is not None:
            body["error"] = live.failure
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    @app.get("/metrics", responses=p.METRICS_RESPONSES)
    async def metrics(request: Request) -> Response:
        _authorize(service, request)
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", responses=p.MODELS_RESPONSES)
    async def models(request: Request) -> dict[str, Any]:
        _authorize(service, request)
        return {"object": "list", "data": [{"id": service.model_id, "object": "model", "owned_by": "edpilot"}]}

    @app.post("/v1/completions", responses=p.COMPLETION_RESPONSES, openapi_extra=completion_body)
    async def completions(request: Request) -> Response:
        body = await _parse(service, request, p.CompletionBody)
        assert isinstance(body, p.CompletionBody)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise p.ApiError(400, "prompt must be one string (or a list of exactly one)", param="prompt")
        max_tokens = p.DEFAULT_COMPLETION_MAX_TOKENS if body.max_tokens is None else body.max_tokens
        return await answer(service, request, body, prompts[0], max_tokens, chat=False)

    @app.post("/v1/chat/completions", responses=p.COMPLETION_RESPONSES, openapi_extra=chat_body)
    async def chat(request: Request) -> Response:
        body = await _parse(service, request, p.ChatBody)
        assert isinstance(body, p.ChatBody)
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        max_tokens = p.DEFAULT_CHAT_MAX_TOKENS if max_tokens is None else max_tokens
        return await answer(service, request, body, p.chat_prompt(body.messages), max_tokens, chat=True)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(p.body_schemas(service.model_id))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def endpoint_label(request: Request) -> str:
    """The metrics label of a request: its route's path template, or `unmatched` (never the raw path)."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _config(live: LiveBatcher | LiveContinuous) -> dict[str, Any]:
    c = live.driver.config
    return c.fields()


def _authorize(service: Service, request: Request) -> None:
    if service.api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), service.api_key.encode()):
        raise p.ApiError(401, "missing or wrong API key (Authorization: Bearer KEY)", code="invalid_api_key")


async def _parse(service: Service, request: Request, model: type[BaseModel]) -> BaseModel:
    _authorize(service, request)
    try:
        data = p.parse_json(await request.body())
    except ClientDisconnect:  # the client went away (or was cut off for sending too slowly): nobody to answer
        raise p.ApiError(408, "the request body did not arrive", code="request_timeout") from None
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
