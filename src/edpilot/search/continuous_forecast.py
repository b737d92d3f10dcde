"""The traffic's part of a config's cost under continuous batching, for every config of a grid at once.

`ContinuousForecast(space, traffic)` is `SteadyForecast`'s counterpart when a config's batch size is the most
sequences decoding at once (slots): from what a round measures — the mean decode step's time (s) and energy (J),
`mean_batch_s` and `energy_per_batch_j` of a continuous round, and idle power (W) — it prices every config's
steady state at the traffic with `serving.continuous_queue.steady_continuous` (an M/D/c queue of requests of
output_tokens steps each). The search and the benchmark's oracle check share it (benchmarks/continuous_search.py).

The strategy reads two things off a forecast besides `outlook`: `batch_of`, what one unit of service time serves
(`utilisation` = λ·s / batch_of and throughput = batch_of / s), which for a step is slots / output tokens
requests' worth of tokens. `busy_units(forecast, config, obs)` says how many units a window ran, to split its
energy into busy and idle (steps here, batches under static batching), and `taught_by(forecast, configs, i, obs)`
which configs a window measured: a continuous round that never filled its slots measured every slot count at its
clock that it did not reach (the same steps would have run), so the search need not try them one by one.

`make_forecast` picks the forecast by the batching mode; `STEP_TIME_SLOPES` / `STEP_ENERGY_SLOPES` are the priors
of a step's log time and energy in log slots and log f: a step reads the weights once whatever the number of
sequences (flat in slots when memory-bound, rising only as the KV reads and the compute grow).
"""

from __future__ import annotations

import numpy as np

from edpilot.objective import BoundObjective, Observation
from edpilot.search.forecast import Outlook, SteadyForecast
from edpilot.serving.continuous_queue import ContinuousSteady, steady_continuous
from edpilot.serving.traffic import Traffic
from edpilot.space import Config, ConfigSpace

STEP_TIME_SLOPES = {"slope_b": 0.1, "slope_f": -0.5, "slope_sd": 0.25}
STEP_ENERGY_SLOPES = {"slope_b": 0.1, "slope_f": 0.0, "slope_sd": 0.5}


class ContinuousForecast:
    """Every config's steady-state cost under continuous batching at one traffic."""

    def __init__(self, space: ConfigSpace, traffic: Traffic, *, energy_scope: str = "total") -> None:
        self.traffic, self.energy_scope = traffic, energy_scope
        self.slots = np.array([c.batch_size for c in space], dtype=float)
        self.batch_of = self.slots / float(traffic.output_tokens)

    def latency(self, service_s: np.ndarray, *, with_p95: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Mean and p95 latency (s) per config from its mean step time (inf where ρ ≥ 1; p95 nan unless asked)."""
        steady = self._steady(service_s, np.ones_like(np.asarray(service_s, dtype=float)), 0.0)
        p95 = steady.p95_latency_s if with_p95 else np.full(len(self.slots), np.nan)
        return steady.mean_latency_s, p95

    def outlook(
        self,
        objective: BoundObjective,
        *,
        service_s: np.ndarray,
        energy_per_batch_j: np.ndarray,
        idle_power_w: np.ndarray,
        with_p95: bool = False,
        extra_latency_s: np.ndarray | float = 0.0,
    ) -> Outlook:
        """Steady-state cost per config from its mean step time (s) and energy (J); `extra_latency_s` adds a
        transient (an inherited backlog) to the mean."""
        steady = self._steady(service_s, energy_per_batch_j, idle_power_w)
        mean_latency_s = steady.mean_latency_s
        with np.errstate(invalid="ignore", over="ignore"):
            cost = np.asarray(objective.cost_of(steady.energy_per_request_j, mean_latency_s + extra_latency_s))
        return Outlook(
            cost=np.where(np.isfinite(mean_latency_s), cost, np.inf),
            energy_per_request_j=steady.energy_per_request_j,
            mean_latency_s=mean_latency_s,
            p95_latency_s=steady.p95_latency_s if with_p95 else np.full(len(self.slots), np.nan),
            power_w=steady.power_w,
            keeps_up=steady.keeps_up,
            utilisation=steady.utilisation,
        )

    def _steady(self, step_s: np.ndarray, step_j: np.ndarray, idle_w: np.ndarray | float) -> ContinuousSteady:
        return steady_continuous(
            self.traffic,
            self.slots,
            step_s=step_s,
            step_energy_j=step_j,
            idle_power_w=idle_w,
            energy_scope=self.energy_scope,
        )


def make_forecast(
    space: ConfigSpace, traffic: Traffic, *, energy_scope: str, batching: str = "static"
) -> SteadyForecast | ContinuousForecast:
    """The steady-state forecast of the batching mode: `SteadyForecast` (static) or `ContinuousForecast`."""
    if batching == "continuous":
        return ContinuousForecast(space, traffic, energy_scope=energy_scope)
    return SteadyForecast(space, traffic, energy_scope=energy_scope)


def taught_by(
    forecast: SteadyForecast | ContinuousForecast, configs: list[Config], i: int, obs: Observation
) -> list[int]:
    """The configs (indices into `configs`) a window at `configs[i]` measured: its own; under continuous batching
    also every config at the same clock with at least `obs.peak_sequences` slots when the window never filled its
    slots — the cap never held a request back, so those configs would have served exactly the same steps."""
    peak, own = obs.peak_sequences, configs[i]
    if not isinstance(forecast, ContinuousForecast) or peak is None or peak >= own.batch_size:
        return [i]
    return [j for j, c in enumerate(configs) if j == i or (c.knobs == own.knobs and c.batch_size >= peak)]


def busy_units(forecast: SteadyForecast | ContinuousForecast, config: Config, obs: Observation) -> float:
    """How many batches (static) or decode steps (continuous: `obs.steps`) a window at `config` ran: its busy time
    is that many mean batch times."""
    if isinstance(forecast, ContinuousForecast) and obs.steps is not None:
        return float(obs.steps)
    return float(-(-obs.requests // config.batch_size))
