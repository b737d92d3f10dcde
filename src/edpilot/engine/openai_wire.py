"""What an OpenAI-compatible /v1/completions server sends back, checked for shape.

A server that answers JSON of another shape raises `WireError` with a message naming what was expected and
what came, so the request fails with that text instead of crashing the run or passing as a success.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SHOWN_CHARS = 120  # how much of a bad answer an error message quotes


class WireError(ValueError):
    """The server's answer is not an OpenAI completion of the expected shape."""


@dataclass(frozen=True)
class Chunk:
    """One streamed event (or a whole non-streamed answer): its text, and what the server said about tokens."""

    text: str
    completion_tokens: int | None = None  # from "usage", sent in the last chunk with include_usage
    finish_reason: str | None = None


def _shown(raw: str) -> str:
    return raw if len(raw) <= SHOWN_CHARS else raw[:SHOWN_CHARS] + "..."


def parse_event(raw: str) -> Chunk:
    """Parse one completion object (a `data:` payload or a whole JSON body); raises WireError on a wrong shape."""
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise WireError(f"server sent invalid JSON ({exc.__class__.__name__}): {_shown(raw)!r}") from None
    if not isinstance(obj, dict):
        raise WireError(f"server sent JSON of the wrong shape: expected an object, got {_shown(raw)!r}")
    if "error" in obj and "choices" not in obj:
        raise WireError(f"server reported an error: {_shown(json.dumps(obj['error']))}")
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise WireError(f"server sent JSON of the wrong shape: expected 'choices' to be a list, got {_shown(raw)!r}")
    texts, finish = [], None
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("text", ""), str):
            raise WireError(
                f"server sent JSON of the wrong shape: expected choices of {{'text': str}}, got {_shown(raw)!r}"
            )
        texts.append(choice.get("text", ""))
        reason = choice.get("finish_reason")
        finish = reason if isinstance(reason, str) else finish
    return Chunk("".join(texts), _completion_tokens(obj.get("usage"), raw), finish)


def _completion_tokens(usage: object, raw: str) -> int | None:
    if usage is None:
        return None
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise WireError(
            f"server sent JSON of the wrong shape: expected usage.completion_tokens >= 0, got {_shown(raw)!r}"
        )
    return tokens


class SseData:
    """The payloads of the `data:` lines of a server-sent-events body that arrives in pieces (lines end in LF,
    CRLF or CR, as the standard allows); comments, blank lines and other fields are skipped. Invalid UTF-8 is
    replaced (U+FFFD), as a text decoder would."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, piece: bytes) -> list[str]:
        """The payloads completed by `piece`."""
        lines = (self._rest + piece if self._rest else piece).splitlines(keepends=True)
        self._rest = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        return [line[5:].strip().decode("utf-8", "replace") for line in lines if line.startswith(b"data:")]

    def end(self) -> list[str]:
        """The payload of a last line the body ended without a line ending (the standard needs none)."""
        rest, self._rest = self._rest, b""
        return [rest[5:].strip().decode("utf-8", "replace")] if rest.startswith(b"data:") else []
