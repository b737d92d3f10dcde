"""What the traffic looks like, as the search and the queueing maths need it (independent of hardware)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from edpilot.errors import WorkloadError

TrafficKind = Literal["uniform", "poisson", "saturated", "trace"]
TRAFFIC_KINDS: tuple[str, ...] = ("uniform", "poisson", "saturated", "trace")


@dataclass(frozen=True)
class Traffic:
    """Arrival process and request lengths; `gaps_s` holds a replayed trace's inter-arrival gaps (s)."""

    arrivals: TrafficKind = "uniform"
    rate_per_s: float = 1.0
    prompt_tokens: float = 128.0
    output_tokens: float = 70.0
    requests_per_round: int = 32
    gaps_s: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.arrivals not in TRAFFIC_KINDS:
            raise WorkloadError(f"unknown arrival process {self.arrivals!r}; choose one of: {', '.join(TRAFFIC_KINDS)}")
        if self.arrivals != "saturated" and not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise WorkloadError(f"arrival rate must be a finite number > 0 req/s, got {self.rate_per_s}")
        for name in ("prompt_tokens", "output_tokens"):
            value = getattr(self, name)
            if not (value >= 1 and math.isfinite(value)):
                raise WorkloadError(f"{name.replace('_', ' ')} must be a finite number >= 1, got {value}")
        if self.requests_per_round < 1:
            raise WorkloadError(f"requests per round must be >= 1, got {self.requests_per_round}")
        if self.arrivals == "trace" and not self.gaps_s:
            raise WorkloadError("trace traffic needs its inter-arrival gaps")

    def window_requests(self, batch_size: int) -> int:
        """Requests in one measurement window: at least `requests_per_round` and two full batches, a multiple of b."""
        return window_requests(self.requests_per_round, batch_size)


def window_requests(requests_per_round: int, batch_size: int) -> int:
    """At least `requests_per_round` requests and two full batches, rounded up to whole batches."""
    batches = max(2, -(-requests_per_round // batch_size))
    return batches * batch_size
