"""The traffic's part of a config's cost under continuous batching, for every config of a grid at once.

`ContinuousForecast(space, traffic)` is `SteadyForecast`'s counterpart when a config's batch size is the most
sequences decoding at once (slots). A round measures the mean decode step's time (s) and energy (J) —
`mean_batch_s` and `energy_per_batch_j` of a continuous round — at the occupancy it ran, its mean active sequences
per step (`mean_sequences`), which may be below the config's steady occupancy while its queue fills. The search
learns the step per config at the occupancy its rounds measured; the forecast learns how a step grows with the
sequences in it (`StepShape`, log step over log occupancy and the device levels, from every round), turns each
config's step into a curve over occupancy 1 … slots, and prices its steady state at the traffic with
`serving.continuous_queue.steady_continuous` (a birth–death chain over occupancy; the wait for a slot halved as
M/D/c's). The search and the benchmark's oracle check share the queue maths (benchmarks/continuous_search.py).

The strategy reads two things off a forecast besides `outlook`: `batch_of`, what one unit of the measured step
serves at capacity (`utilisation` = λ·s / batch_of, throughput = batch_of / s): slots / output tokens requests'
worth of tokens, scaled by the step at the measured occupancy over the step with every slot full — so λ·s /
batch_of = λ·k·s(c)/c, and a config keeps up iff it is below 1. `busy_units(forecast, config, obs)` says how many
units a window ran, to split its energy into busy and idle (steps here, batches under static batching), and
`taught_by(forecast, configs, i, obs)` which configs a window measured: a continuous round that never filled its
slots measured every slot count at its clock that it did not reach (the same steps would have run), so the search
need not try them one by one. `learn_occupancy` tells the forecast the occupancy of a window at the configs it
taught, and `occupancy_shift` puts a window's step at its config's earlier windows' occupancy (to tell an outlier
from a fuller queue).

`make_forecast` picks the forecast by the batching mode (carrying what the last one learned over a change of
traffic); `STEP_TIME_SLOPES` / `STEP_ENERGY_SLOPES` are the priors of a step's log time and energy in log slots
and log f: a step reads the weights once whatever the number of sequences (flat in slots when memory-bound, rising
only as the KV reads and the compute grow).
"""

from __future__ import annotations

import numpy as np

from edpilot.objective import BoundObjective, Observation
from edpilot.search.forecast import Outlook, SteadyForecast
from edpilot.search.step_shape import StepShape
from edpilot.serving.continuous_queue import ContinuousSteady, steady_continuous
from edpilot.serving.traffic import Traffic
from edpilot.space import Config, ConfigSpace

STEP_TIME_SLOPES = {"slope_b": 0.1, "slope_f": -0.5, "slope_sd": 0.25}
STEP_ENERGY_SLOPES = {"slope_b": 0.1, "slope_f": 0.0, "slope_sd": 0.5}


class ContinuousForecast:
    """Every config's steady-state cost under continuous batching at one traffic."""

    def __init__(
        self,
        space: ConfigSpace,
        traffic: Traffic,
        *,
        energy_scope: str = "total",
        previous: ContinuousForecast | None = None,
    ) -> None:
        self.traffic, self.energy_scope = traffic, energy_scope
        self.slots = np.array([c.batch_size for c in space], dtype=float)
        self.sequences = np.arange(1, int(self.slots.max()) + 1, dtype=float)  # the occupancies a curve spans
        self.shape: StepShape = previous.shape if previous is not None else StepShape(space)
        # a running sequence's mean tokens in the KV cache at this traffic: its prompt and half its answer
        self.context_tokens = traffic.prompt_tokens + (traffic.output_tokens - 1.0) / 2.0
        # per config: the occupancy and context of each window it learned from, and its weight (its batches)
        self.occupancy: list[list[tuple[float, float, float]]] = (
            previous.occupancy if previous is not None else [[] for _ in range(len(space))]
        )
        self._lifts: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def batch_of(self) -> np.ndarray:
        """Requests' worth of tokens one measured step serves at capacity: slots / output tokens × s(m) / s(c)."""
        time, _ = self._curves()
        full = time[np.arange(len(self.slots)), self.slots.astype(int) - 1]
        served: np.ndarray = self.slots / float(self.traffic.output_tokens) * np.exp(-full)
        return served

    def learn(self, index: int, taught: list[int], obs: Observation) -> None:
        """A window at config `index` that taught the configs `taught`: its occupancy, and its step there."""
        if obs.mean_sequences is None or obs.mean_sequences < 1.0:
            return
        context = self._context(obs)
        for j in taught:
            self.occupancy[j].append((obs.mean_sequences, context, float(-(-obs.requests // int(self.slots[j])))))
        self.shape.add(
            index,
            sequences=obs.mean_sequences,
            context_tokens=context,
            step_s=obs.mean_batch_s,
            step_energy_j=obs.energy_per_batch_j,
        )
        self._lifts = None

    def shift_log(self, index: int, obs: Observation) -> float:
        """Log of config `index`'s step at the occupancy and context its windows measured over its step at
        `obs`'s (which says its occupancy)."""
        time, _ = self._curves()
        at_obs = float(np.interp(np.log(obs.mean_sequences or 1.0), np.log(self.sequences), time[index]))
        context_log = self.shape.context_log(self._context(obs)) - self.shape.context_log(self.context_tokens)
        return -(at_obs + context_log)

    def _context(self, obs: Observation) -> float:
        """A window's mean context (tokens), or the traffic's where the window does not say."""
        return obs.mean_context_tokens if obs.mean_context_tokens is not None else self.context_tokens

    def latency(self, service_s: np.ndarray, *, with_p95: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Mean and p95 latency (s) per config from its measured step time (inf where ρ ≥ 1; p95 nan unless
        asked)."""
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
        """Steady-state cost per config from its step time (s) and energy (J) at its measured occupancy;
        `extra_latency_s` adds a transient (an inherited backlog) to the mean."""
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
        time, energy = self._curves()
        s = np.broadcast_to(np.asarray(step_s, dtype=float), self.slots.shape)
        e = np.broadcast_to(np.asarray(step_j, dtype=float), self.slots.shape)
        return steady_continuous(
            self.traffic,
            self.slots,
            step_s=s[:, None] * np.exp(time),
            step_energy_j=e[:, None] * np.exp(energy),
            idle_power_w=idle_w,
            energy_scope=self.energy_scope,
        )

    def _curves(self) -> tuple[np.ndarray, np.ndarray]:
        """Log step time and energy per config over occupancy 1 … max slots at the traffic's context, relative to
        the step at the config's measured occupancy and context (its windows' weighted mean of the shape; an
        unmeasured config's at its slots and the traffic's context)."""
        if self._lifts is None:
            log_n = np.log(self.sequences)
            lifts = []
            for energy in (False, True):
                curve = self.shape.curve(self.sequences, energy=energy)
                here = self.shape.context_log(self.context_tokens, energy=energy)
                measured = np.array(
                    [
                        np.average(
                            [
                                np.interp(np.log(m), log_n, row) + self.shape.context_log(t, energy=energy) - here
                                for m, t, _ in seen
                            ],
                            weights=[w for _, _, w in seen],
                        )
                        if seen
                        else row[int(c) - 1]
                        for row, seen, c in zip(curve, self.occupancy, self.slots, strict=True)
                    ]
                )
                lifts.append(curve - measured[:, None])
            self._lifts = (lifts[0], lifts[1])
        return self._lifts


def make_forecast(
    space: ConfigSpace,
    traffic: Traffic,
    *,
    energy_scope: str,
    batching: str = "static",
    previous: SteadyForecast | ContinuousForecast | None = None,
) -> SteadyForecast | ContinuousForecast:
    """The steady-state forecast of the batching mode: `SteadyForecast` (static) or `ContinuousForecast`, which
    keeps what `previous` learned of the step over occupancy."""
    if batching == "continuous":
        carried = previous if isinstance(previous, ContinuousForecast) else None
        return ContinuousForecast(space, traffic, energy_scope=energy_scope, previous=carried)
    return SteadyForecast(space, traffic, energy_scope=energy_scope)


def occupancy_shift(forecast: SteadyForecast | ContinuousForecast, i: int, obs: Observation) -> float:
    """What to add to a window's log step at config `i` to compare it with the config's earlier windows: under
    continuous batching the shape's step at their occupancy over the step at the window's (0: static batches, or a
    window that does not say its occupancy)."""
    if not isinstance(forecast, ContinuousForecast) or obs.mean_sequences is None or obs.mean_sequences < 1.0:
        return 0.0
    return forecast.shift_log(i, obs)


def learn_occupancy(forecast: SteadyForecast | ContinuousForecast, i: int, taught: list[int], obs: Observation) -> None:
    """Continuous batching: tell the forecast the occupancy a window at config `i` ran at, at every config it
    taught (`taught_by`), and the step it measured there (static batches: nothing to learn)."""
    if isinstance(forecast, ContinuousForecast):
        forecast.learn(i, taught, obs)


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
