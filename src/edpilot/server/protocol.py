"""The OpenAI wire shapes the server speaks: request bodies (strictly typed), responses, chunks and errors.

Sampling parameters (temperature, top_p, stop, ...) are accepted and ignored: engines decode greedily.
`usage.energy_j` is the request's share of its batch's device energy (J), null without a meter.
The OpenAPI pieces (`request_body`, `body_schemas`, the `*_RESPONSES` tables) describe the same shapes.
"""

from __future__ import annotations

import json
import uuid
from json.encoder import encode_basestring_ascii  # json.dumps of a str, without the encoder around it
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from edpilot.clock import unix_time_s
from edpilot.run import MAX_OUTPUT_TOKENS

DEFAULT_COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
DEFAULT_CHAT_MAX_TOKENS = 256


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _integral(value: Any) -> Any:
    """JSON's integers include 5.0 (a number with no fraction); a string or a fraction stays refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: StrictBool = False


class CompletionBody(_Body):
    model: StrictStr
    prompt: StrictStr | list[StrictStr]
    max_tokens: JsonInt | None = None
    n: JsonInt = 1
    stream: StrictBool = False
    stream_options: StreamOptions | None = None


class TextPart(_Body):
    type: Literal["text"]
    text: StrictStr


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart] | None = None


class ChatBody(_Body):
    model: StrictStr
    messages: list[Message] = Field(min_length=1)
    max_tokens: JsonInt | None = None
    max_completion_tokens: JsonInt | None = None
    n: JsonInt = 1
    stream: StrictBool = False
    stream_options: StreamOptions | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error the server answers, in OpenAI's shape."""

    error: ErrorDetail


class Health(BaseModel):
    """/healthz: `ok` (200), or `draining` / `failed` (503, with the failure in `error`)."""

    status: Literal["ok", "draining", "failed"]
    queue: int
    freq_mhz: float | None
    batch_size: int
    error: str | None = None


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; ApiError 400 for text that is not JSON, not valid Unicode, or past JSON's limits."""
    try:
        data = json.loads(raw)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone surrogate ("\ud800") cannot be answered
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON", code="invalid_json") from None
    except UnicodeEncodeError:
        message = "the body holds a lone UTF-16 surrogate: it is not valid Unicode"
        raise ApiError(400, message, code="invalid_json") from None
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply", code="invalid_json") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        message = f"the body is past JSON's limits: {str(exc).partition(':')[0]}"
        raise ApiError(400, message, code="invalid_json") from None
    return data


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": _STATUS_TEXT[status]} for status in statuses}


_STATUS_TEXT = {
    400: "A bad value, or a body that is not JSON",
    401: "Missing or wrong API key",
    404: "Unknown model",
    408: "The request did not arrive in time",
    422: "A field missing or of the wrong type",
    429: "The queue is full (see Retry-After)",
    502: "The engine failed",
    503: "Shutting down, or failed",
}
_JSON_OBJECT: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
_SSE_EVENT: dict[str, Any] = {"type": "object", "properties": {"data": {"type": "string"}}, "required": ["data"]}
COMPLETION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer, whole (JSON) or streamed (server-sent events)",
        "content": {**_JSON_OBJECT, "text/event-stream": {"schema": _SSE_EVENT}},
    },
    **_errors(400, 401, 404, 408, 422, 429, 502, 503),
}
MODELS_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": _JSON_OBJECT}, **_errors(401)}
METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
    **_errors(401),
}
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Health, "description": "Serving"},
    503: {"model": Health, "description": "Draining or failed"},
}


def request_body(model: type[BaseModel], example: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a route that parses `model` itself (to answer errors in OpenAI's shape)."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref, "example": example}}}}


COMPLETION_EXAMPLE = {"prompt": "Say hello", "max_tokens": 8}  # with the server's model, in OpenAPI
CHAT_EXAMPLE = {"messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8}


def body_schemas(model_id: str) -> dict[str, Any]:
    """The request bodies' JSON schemas (and those they refer to) for OpenAPI's components; `model` is the one
    model this server serves."""
    out: dict[str, Any] = {}
    for model in (CompletionBody, ChatBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = _accepted(schema, model_id)
    return out


def _accepted(schema: dict[str, Any], model_id: str) -> dict[str, Any]:
    """A body schema narrowed to what the server accepts: its one model, n = 1, one non-blank prompt, max_tokens
    in range (the body models check types; the routes check these values, answering 400 or 404)."""
    props = schema["properties"]
    props["model"] = {"type": "string", "enum": [model_id], "title": "Model"}
    props["n"] = {"type": "integer", "enum": [1], "default": 1, "title": "N"}
    tokens = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_OUTPUT_TOKENS}, {"type": "null"}]}
    for name in ("max_tokens", "max_completion_tokens"):
        if name in props:
            props[name] = {**tokens, "default": None, "title": props[name].get("title", name)}
    if "prompt" in props:
        text = {"type": "string", "pattern": r"\S"}
        props["prompt"] = {"anyOf": [text, {"type": "array", "items": text, "minItems": 1, "maxItems": 1}]}
    return schema


def chat_prompt(messages: list[Message]) -> str:
    """The conversation as one prompt: `role: content` lines, then `assistant:` to answer."""
    lines = []
    for m in messages:
        content = m.content if isinstance(m.content, str) or m.content is None else "".join(p.text for p in m.content)
        lines.append(f"{m.role}: {content or ''}")
    return "\n".join(lines) + "\nassistant:"


def new_id(prefix: str) -> str:
    """A unique response id such as `cmpl-3f2a...`."""
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int, energy_j: float | None) -> dict[str, Any]:
    """OpenAI usage plus `energy_j`."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "energy_j": energy_j,
    }


def finish_reason(output_tokens: int, max_tokens: int) -> str:
    """`length` when the answer used every token it was allowed, else `stop`."""
    return "length" if output_tokens >= max_tokens else "stop"


def completion_response(
    *, rid: str, model: str, text: str, reason: str, usage_: dict[str, Any], chat: bool
) -> dict[str, Any]:
    """A whole (non-streamed) answer."""
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
    else:
        choice = {"index": 0, "text": text, "logprobs": None}
    return {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(unix_time_s()),
        "model": model,
        "choices": [{**choice, "finish_reason": reason}],
        "usage": usage_,
    }


def chunk(
    *,
    rid: str,
    model: str,
    chat: bool,
    text: str | None = None,
    reason: str | None = None,
    role: bool = False,
    usage_: dict[str, Any] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """One streamed chunk: a piece of text, the finish reason, or (no choices) the usage; `created` (unix s)
    defaults to now."""
    if usage_ is not None:
        choices: list[dict[str, Any]] = []
    elif chat:
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
        if text is not None:
            delta["content"] = text
        choices = [{"index": 0, "delta": delta, "finish_reason": reason}]
    else:
        choices = [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}]
    out: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(unix_time_s()) if created is None else created,
        "model": model,
        "choices": choices,
    }
    if usage_ is not None:
        out["usage"] = usage_
    return out


_MARK = "\x00piece\x00"  # stands for a text piece in an event's template (NUL: in no model name)


class ChunkEvents:
    """The server-sent events of one streamed answer, as bytes; the JSON around a piece of text is built once.

    Each text event is `chunk(...)` with that text, encoded as `json.dumps` would (only the piece is encoded per
    chunk); every event of the answer carries the `created` time of its start."""

    def __init__(self, *, rid: str, model: str, chat: bool) -> None:
        self.rid, self.model, self.chat = rid, model, chat
        self.created = int(unix_time_s())
        template = json.dumps(self.chunk(text=_MARK))
        head, _, tail = template.rpartition(json.dumps(_MARK))
        self._head, self._tail = b"data: " + head.encode(), tail.encode() + b"\n\n"

    def chunk(self, **fields: Any) -> dict[str, Any]:
        """`chunk(...)` of this answer (text, reason, role or usage_)."""
        return chunk(rid=self.rid, model=self.model, chat=self.chat, created=self.created, **fields)

    def texts(self, texts: list[str]) -> bytes:
        """One event per piece of text, joined."""
        head, tail = self._head, self._tail
        return b"".join([head + encode_basestring_ascii(text).encode() + tail for text in texts])

    @staticmethod
    def event(data: dict[str, Any] | str) -> bytes:
        """One event: a JSON object, or a bare string such as `[DONE]`."""
        return b"data: " + (data if isinstance(data, str) else json.dumps(data)).encode() + b"\n\n"


def pieces(text: str) -> list[str]:
    """The text cut into word-sized stream deltas that join back to it exactly."""
    out: list[str] = []
    for i, word in enumerate(text.split(" ")):
        out.append(word if i == 0 else " " + word)
    return [p for p in out if p] or [""]
