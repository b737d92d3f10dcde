"""What one measurement window observed, and what it costs under each objective.

Objectives (lower is better): `edp` = E·L (default), `ed2p` = E·L², `energy` = E, `latency` = L, and
`weighted:ALPHA` = α·E/E_base + (1−α)·L/L_base (the paper's search cost; the baseline costs 1).
E is the mean energy per request (J), L the mean latency per request (s).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from edpilot.errors import ConfigError

ObjectiveName = Literal["edp", "ed2p", "energy", "latency", "weighted"]
OBJECTIVE_NAMES: tuple[str, ...] = ("edp", "ed2p", "energy", "latency", "weighted:ALPHA")
EnergyScope = Literal["total", "active"]
ENERGY_SCOPES: tuple[str, ...] = ("total", "active")


@dataclass(frozen=True)
class Observation:
    """The outcome of serving at one config for one measurement window.

    Energies in joules, times in seconds, power in watts. `energy_per_request_j` is None when the
    device has no energy meter. `keeps_up` is False when batches take longer than arrivals fill them.
    `actual_freq_mhz` is the clock the device reported at the window's end (it differs from the
    config's on read-only devices and in dry runs). `failed_requests` counts requests the engine
    answered with an error (timeouts, HTTP errors); they still count in latency and energy; a window
    whose every request failed is `failed`. `meter_updates` is how many meter updates the window spans
    (None when the meter's interval is unknown). `backlog_requests` is how many requests were queued when
    the window ended, carried into the next one (None where the driver does not say). `p50_ttft_s`/`p95_ttft_s`
    are percentiles of the time from arrival to a request's first token, `p50_itl_s`/`p95_itl_s` of its mean time
    between tokens (None: the engine did not say when its tokens came). `steps` is how many decode steps a window
    of continuous batching ran (`mean_batch_s` and `energy_per_batch_j` are then per step; None for static batches), and
    `peak_sequences` the most sequences one of its steps decoded, `mean_sequences` the mean over its steps of the
    sequences in a step, `mean_context_tokens` the mean over its steps of a sequence's tokens in the KV cache (None
    where not measured).
    """

    requests: int
    energy_per_request_j: float | None
    mean_latency_s: float
    p95_latency_s: float
    mean_ttft_s: float | None
    power_w: float | None
    mean_batch_s: float
    energy_per_batch_j: float | None
    window_s: float
    keeps_up: bool
    actual_freq_mhz: float | None = None
    failed_requests: int = 0
    meter_updates: float | None = None
    first_error: str | None = None
    # Latency = fill wait + queue wait + service, each a per-request mean (s); None where not measured
    # (edpilot.attribution defines them and splits an EDP gain over them).
    mean_fill_wait_s: float | None = None
    mean_queue_wait_s: float | None = None
    mean_service_s: float | None = None
    backlog_requests: int | None = None
    p50_ttft_s: float | None = None
    p95_ttft_s: float | None = None
    p50_itl_s: float | None = None
    p95_itl_s: float | None = None
    steps: int | None = None
    peak_sequences: int | None = None
    mean_sequences: float | None = None
    mean_context_tokens: float | None = None

    @property
    def failed(self) -> bool:
        """Every request of the window failed: nothing was served, so nothing can be chosen from it."""
        return self.failed_requests >= self.requests

    @property
    def edp(self) -> float | None:
        """Energy-delay product in J·s (mean energy per request × mean latency)."""
        if self.energy_per_request_j is None:
            return None
        return self.energy_per_request_j * self.mean_latency_s

    def to_dict(self) -> dict[str, object]:
        """Plain dict for the run log, with the EDP included."""
        return {**asdict(self), "edp": self.edp}


@dataclass(frozen=True)
class Objective:
    """A cost function over observations; `alpha` is only used by `weighted`."""

    name: ObjectiveName
    alpha: float = 0.5

    @property
    def needs_energy(self) -> bool:
        """Whether this objective needs an energy meter."""
        return self.name != "latency"

    def __str__(self) -> str:
        return f"weighted:{self.alpha:g}" if self.name == "weighted" else self.name

    def cost(self, obs: Observation, baseline: Observation | None = None) -> float:
        """Cost of `obs` (lower is better); `weighted` needs the `baseline` observation."""
        return float(self.bind(baseline).cost(obs))

    def bind(self, baseline: Observation | None) -> BoundObjective:
        """This objective with its normaliser fixed by the baseline observation (`weighted` needs one)."""
        if self.name != "weighted":
            return BoundObjective(self)
        if baseline is None or baseline.energy_per_request_j is None:
            raise ConfigError("objective weighted needs a measured baseline with an energy reading")
        return BoundObjective(self, baseline.energy_per_request_j, baseline.mean_latency_s)


@dataclass(frozen=True)
class BoundObjective:
    """An objective bound to its baseline: a cost from an observation, or from predicted E (J) and L (s).

    `cost_of` is vectorised over numpy arrays, so a strategy can cost every config of a grid at once.
    """

    objective: Objective
    base_energy_per_request_j: float | None = None
    base_mean_latency_s: float | None = None

    @property
    def needs_energy(self) -> bool:
        """Whether an energy reading is needed."""
        return self.objective.needs_energy

    def __str__(self) -> str:
        return str(self.objective)

    def cost(self, obs: Observation) -> float:
        """Cost of an observed window (lower is better)."""
        if self.needs_energy and obs.energy_per_request_j is None:
            raise ConfigError(f"objective {self} needs an energy meter, and this window has no energy reading")
        return float(self.cost_of(obs.energy_per_request_j or 0.0, obs.mean_latency_s))

    def cost_of(self, energy_per_request_j: ArrayLike, mean_latency_s: ArrayLike) -> np.ndarray | float:
        """Cost from energy per request (J) and mean latency (s); arrays broadcast."""
        e, lat = np.asarray(energy_per_request_j, dtype=float), np.asarray(mean_latency_s, dtype=float)
        name = self.objective.name
        if name == "latency":
            return lat
        if name == "edp":
            edp: np.ndarray = e * lat
            return edp
        if name == "ed2p":
            ed2p: np.ndarray = e * lat**2
            return ed2p
        if name == "energy":
            return e
        assert self.base_energy_per_request_j is not None and self.base_mean_latency_s is not None
        alpha = self.objective.alpha
        return alpha * e / self.base_energy_per_request_j + (1 - alpha) * lat / self.base_mean_latency_s


def parse_objective(text: str) -> Objective:
    """Parse 'edp', 'ed2p', 'energy', 'latency' or 'weighted:ALPHA' (0 <= ALPHA <= 1)."""
    name, colon, arg = text.strip().partition(":")
    if name in ("edp", "ed2p", "energy", "latency") and not colon:
        return Objective(name)  # type: ignore[arg-type]
    if name == "weighted" and colon and not arg:
        raise ConfigError("weighted: needs its ALPHA (0 <= ALPHA <= 1), e.g. weighted:0.5")
    if name == "weighted":
        try:
            alpha = float(arg) if arg else 0.5
        except ValueError:
            alpha = math.nan
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"weighted:ALPHA needs 0 <= ALPHA <= 1, got {arg!r}")
        return Objective("weighted", alpha)
    raise ConfigError(f"unknown objective {text!r}; choose one of: {', '.join(OBJECTIVE_NAMES)}")
