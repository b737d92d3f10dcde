"""Prompt sets shipped with edpilot, and a rough token count for engines that do not tokenize."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

CHARS_PER_TOKEN = 4.0  # rule of thumb for English BPE vocabularies (Llama 3, Qwen 2.5)


@cache
def builtin_prompts() -> tuple[str, ...]:
    """The shipped prompt set: varied tasks and lengths, written for this project."""
    text = resources.files("edpilot.workload").joinpath("data/prompts.jsonl").read_text(encoding="utf-8")
    return tuple(json.loads(line)["prompt"] for line in text.splitlines() if line.strip())


def estimate_tokens(text: str) -> int:
    """Approximate token count of `text` (≈ 4 characters a token), at least 1."""
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def synthetic_prompt(tokens: int) -> str:
    """A filler prompt of about `tokens` tokens, for fixed-length benchmarks."""
    return ("word " * tokens).strip()
