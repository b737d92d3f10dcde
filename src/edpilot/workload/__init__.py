"""Workloads: which requests arrive, when, and how long their prompts and answers are.

`Workload(...).requests(count, rng)` returns `Request`s with arrival times relative to a window start.
Arrivals are `uniform` (every 1/λ s, the paper's setting), `poisson` (rate λ) or `saturated` (all at once);
`TraceWorkload(read_trace(path))` replays a recorded JSONL trace.
Raises `WorkloadError` on bad settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edpilot.errors import WorkloadError
from edpilot.serving.traffic import Traffic
from edpilot.workload.arrivals import ARRIVAL_KINDS, ArrivalKind, arrival_times_s
from edpilot.workload.prompts import builtin_prompts, estimate_tokens, synthetic_prompt
from edpilot.workload.request import Request
from edpilot.workload.trace import TraceEntry, TraceWorkload, read_trace

__all__ = [
    "ARRIVAL_KINDS",
    "ArrivalKind",
    "Request",
    "RequestSource",
    "TraceEntry",
    "TraceWorkload",
    "Workload",
    "arrival_times_s",
    "builtin_prompts",
    "read_trace",
]


class RequestSource(Protocol):
    """Anything that hands the runner a window of requests (arrivals relative to the window start)."""

    @property
    def arrivals(self) -> str: ...

    def requests(self, count: int, rng: np.random.Generator) -> list[Request]: ...

    def traffic(self, requests_per_round: int) -> Traffic: ...


@dataclass(frozen=True)
class Workload:
    """Arrival process and request lengths.

    `prompt_tokens=None` draws prompts from the shipped set; a number makes every prompt that long.
    Every request asks for `output_tokens` new tokens.
    """

    arrivals: ArrivalKind = "uniform"
    rate_per_s: float = 1.0
    output_tokens: int = 70
    prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.arrivals not in ARRIVAL_KINDS:
            raise WorkloadError(f"unknown arrival process {self.arrivals!r}; choose one of: {', '.join(ARRIVAL_KINDS)}")
        if self.arrivals != "saturated" and not self.rate_per_s > 0:
            raise WorkloadError(f"arrival rate must be > 0 req/s, got {self.rate_per_s:g}")
        if self.output_tokens < 1:
            raise WorkloadError(f"output tokens must be >= 1, got {self.output_tokens}")
        if self.prompt_tokens is not None and self.prompt_tokens < 1:
            raise WorkloadError(f"prompt tokens must be >= 1, got {self.prompt_tokens}")

    def traffic(self, requests_per_round: int) -> Traffic:
        """This workload as the search sees it: arrival process, rate and mean lengths."""
        if self.prompt_tokens is None:
            prompt_tokens = float(np.mean([estimate_tokens(p) for p in builtin_prompts()]))
        else:
            prompt_tokens = float(self.prompt_tokens)
        return Traffic(
            arrivals=self.arrivals,
            rate_per_s=self.rate_per_s,
            prompt_tokens=prompt_tokens,
            output_tokens=float(self.output_tokens),
            requests_per_round=requests_per_round,
        )

    def requests(self, count: int, rng: np.random.Generator) -> list[Request]:
        """`count` requests with arrival times (s) from the window start."""
        times_s = arrival_times_s(self.arrivals, rate_per_s=self.rate_per_s, count=count, rng=rng)
        if self.prompt_tokens is None:
            pool = builtin_prompts()
            texts = [pool[i] for i in rng.integers(0, len(pool), size=count)]
        else:
            texts = [synthetic_prompt(self.prompt_tokens)] * count
        return [
            Request(
                request_id=i,
                arrival_s=float(t),
                prompt=text,
                prompt_tokens=self.prompt_tokens or estimate_tokens(text),
                max_new_tokens=self.output_tokens,
            )
            for i, (t, text) in enumerate(zip(times_s, texts))
        ]
