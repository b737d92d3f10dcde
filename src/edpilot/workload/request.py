"""One inference request as the batcher sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    """A prompt to answer: when it arrives (s, relative to the window start) and how much it asks for."""

    request_id: int
    arrival_s: float
    prompt: str
    prompt_tokens: int
    max_new_tokens: int
