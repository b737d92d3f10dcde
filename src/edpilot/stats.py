"""What is known about one config: every window observed there, its costs, and the votes they cast."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edpilot.objective import Observation
from edpilot.space import Config


@dataclass
class ConfigStats:
    """The windows measured at one config and their costs (None for a failed window).

    Means are over the windows that served something; `keeps_up` is the majority vote of those windows.
    """

    config: Config
    observations: list[Observation] = field(default_factory=list)
    costs: list[float | None] = field(default_factory=list)

    def add(self, obs: Observation, cost: float | None) -> None:
        """Record one window and its cost (None when the window failed)."""
        self.observations.append(obs)
        self.costs.append(cost)

    @property
    def served(self) -> list[Observation]:
        """Windows in which at least one request was answered."""
        return [o for o in self.observations if not o.failed]

    @property
    def windows(self) -> int:
        """Windows measured here, failed ones included."""
        return len(self.observations)

    @property
    def failed_windows(self) -> int:
        """Windows in which every request failed."""
        return sum(o.failed for o in self.observations)

    @property
    def usable(self) -> bool:
        """At least one window served requests and was costed."""
        return any(c is not None for c in self.costs)

    @property
    def mean_cost(self) -> float:
        """Mean cost over the costed windows (inf when there is none)."""
        costs = [c for c in self.costs if c is not None]
        return _mean(costs) if costs else float("inf")

    @property
    def cost(self) -> float | None:
        """Mean cost over the costed windows, None when there is none (nothing was served here)."""
        return self.mean_cost if self.usable else None

    @property
    def keeps_up(self) -> bool:
        """True when most served windows kept up with the arrivals."""
        served = self.served
        return sum(o.keeps_up for o in served) * 2 > len(served)

    @property
    def energy_per_request_j(self) -> float | None:
        """Mean energy per request (J), None when any served window lacks a reading."""
        return _mean_or_none([o.energy_per_request_j for o in self.served])

    @property
    def mean_latency_s(self) -> float | None:
        """Mean of the windows' mean latencies (s)."""
        return _mean_or_none([o.mean_latency_s for o in self.served])

    @property
    def p95_latency_s(self) -> float | None:
        """Mean of the windows' p95 latencies (s)."""
        return _mean_or_none([o.p95_latency_s for o in self.served])

    @property
    def power_w(self) -> float | None:
        """Mean window power (W)."""
        return _mean_or_none([o.power_w for o in self.served])

    @property
    def edp(self) -> float | None:
        """Mean of the windows' EDP (J·s)."""
        return _mean_or_none([o.edp for o in self.served])

    @property
    def mean_fill_wait_s(self) -> float | None:
        """Mean wait for the batch to fill (s); None when a window did not record it."""
        return _mean_or_none([o.mean_fill_wait_s for o in self.served])

    @property
    def mean_queue_wait_s(self) -> float | None:
        """Mean wait from a full batch to its start (s); None when a window did not record it."""
        return _mean_or_none([o.mean_queue_wait_s for o in self.served])

    @property
    def mean_service_s(self) -> float | None:
        """Mean batch service time per request (s); None when a window did not record it."""
        return _mean_or_none([o.mean_service_s for o in self.served])

    @property
    def p95_ttft_s(self) -> float | None:
        """Mean of the windows' p95 time to first token (s); None when a window did not measure it."""
        return _mean_or_none([o.p95_ttft_s for o in self.served])

    def meets(self, *, slo_p95_s: float | None, power_cap_w: float | None, slo_ttft_p95_s: float | None = None) -> bool:
        """Whether the measured p95 latency, p95 TTFT and power stay within the constraints given."""
        p95, power = self.p95_latency_s, self.power_w
        if slo_p95_s is not None and (p95 is None or p95 > slo_p95_s):
            return False
        ttft = self.p95_ttft_s
        if slo_ttft_p95_s is not None and (ttft is None or ttft > slo_ttft_p95_s):
            return False
        return power_cap_w is None or (power is not None and power <= power_cap_w)

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON output and the run log's summary."""
        return {
            **self.config.fields(),
            "windows": self.windows,
            "failed_windows": self.failed_windows,
            "cost": self.cost,
            "energy_per_request_j": self.energy_per_request_j,
            "mean_latency_s": self.mean_latency_s,
            "p95_latency_s": self.p95_latency_s,
            "power_w": self.power_w,
            "edp": self.edp,
            "keeps_up": self.keeps_up,
            "mean_fill_wait_s": self.mean_fill_wait_s,
            "mean_queue_wait_s": self.mean_queue_wait_s,
            "mean_service_s": self.mean_service_s,
        }


def _mean_or_none(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return _mean(values)  # type: ignore[arg-type]


def _mean(values: list[float]) -> float:
    """Mean of finite values that does not overflow (1e308 and 1e308 average to 1e308, not inf)."""
    with np.errstate(over="ignore"):
        mean = float(np.mean(values))
    return mean if math.isfinite(mean) else sum(v / len(values) for v in values)
