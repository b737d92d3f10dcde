"""Arrival processes: when requests reach the batcher."""

from __future__ import annotations

from typing import Literal

import numpy as np

from edpilot.errors import WorkloadError

ArrivalKind = Literal["poisson", "uniform", "saturated"]
ARRIVAL_KINDS: tuple[str, ...] = ("poisson", "uniform", "saturated")


def arrival_times_s(kind: ArrivalKind, *, rate_per_s: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """Arrival times in seconds from the window start for `count` requests.

    `uniform`: every 1/λ s starting at 0; `poisson`: exponential gaps of mean 1/λ, first at 0;
    `saturated`: all at 0 (offline benchmark).
    """
    if count < 1:
        raise WorkloadError(f"need at least one request, got {count}")
    if kind == "saturated":
        return np.zeros(count)
    if not rate_per_s > 0:
        raise WorkloadError(f"arrival rate must be > 0 req/s, got {rate_per_s}")
    if kind == "uniform":
        return np.arange(count, dtype=float) / rate_per_s
    if kind == "poisson":
        gaps_s = rng.exponential(1.0 / rate_per_s, size=count)
        gaps_s[0] = 0.0
        return np.cumsum(gaps_s)
    raise WorkloadError(f"unknown arrival process {kind!r}; choose one of: {', '.join(ARRIVAL_KINDS)}")
