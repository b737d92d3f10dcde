"""Steady-state queueing maths of continuous batching: latency and energy per request at a traffic.

The hardware's answer is a step: with n sequences decoding, one step takes `step_s(n)` seconds and
`step_energy_j(n)` joules (learned per clock by `fit_steps` from measured steps, or priced by the simulator's
`step_cost`). The traffic's answer is a birth-death chain on the number of requests in the system, k: arrivals at
rate λ; with m = min(k, slots) sequences running, each makes a token every `step_s(m)` and needs `output_tokens`
of them, so requests leave at rate m / (output_tokens · step_s(m)). The chain's stationary distribution gives the
mean number in the system, the mean latency by Little's law, and the mean power (idle at k = 0), hence the energy
per request = mean power ÷ λ.

An approximation, said plainly: it treats a request's service as exponential (a real one is a fixed number of
steps), which overstates queueing near capacity and is exact for the mean at low load; prefill is folded into the
step costs. It is the steady-state cost of a config, never a window from an empty queue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

TAIL = 1e-12  # the chain is cut where its probability falls below this
MAX_STATES = 100_000


@dataclass(frozen=True)
class ContinuousForecast:
    """Predicted steady state: mean latency (s), energy per request (J), mean power (W), whether it keeps up."""

    mean_latency_s: float
    energy_per_request_j: float
    power_w: float
    keeps_up: bool

    @property
    def edp(self) -> float:
        """Energy-delay product (J·s)."""
        return self.energy_per_request_j * self.mean_latency_s


def forecast(
    *,
    rate_per_s: float,
    slots: int,
    output_tokens: float,
    step_s: Callable[[int], float],
    step_energy_j: Callable[[int], float],
    idle_power_w: float,
) -> ContinuousForecast:
    """The steady state of continuous batching with `slots` sequences at most, at `rate_per_s` arrivals."""
    if not (rate_per_s > 0 and slots >= 1 and output_tokens >= 1):
        raise ValueError("rate, slots and output tokens must be positive")
    full_rate = slots / (output_tokens * step_s(slots))
    if rate_per_s >= full_rate:  # the queue grows without bound
        return ContinuousForecast(math.inf, math.inf, step_energy_j(slots) / step_s(slots), keeps_up=False)
    log_p = [0.0]
    k = 0
    while k < MAX_STATES:
        k += 1
        m = min(k, slots)
        log_p.append(log_p[-1] + math.log(rate_per_s * output_tokens * step_s(m) / m))
        if k > slots and log_p[-1] - max(log_p) < math.log(TAIL):
            break
    p = np.exp(np.array(log_p) - max(log_p))
    p /= p.sum()
    states = np.arange(len(p))
    running = np.minimum(states, slots)
    busy_power_w = np.array([step_energy_j(m) / step_s(m) if m else idle_power_w for m in running])
    power_w = float(p @ busy_power_w)
    mean_latency_s = float(p @ states) / rate_per_s
    return ContinuousForecast(mean_latency_s, power_w / rate_per_s, power_w, keeps_up=True)


@dataclass(frozen=True)
class StepFit:
    """Step time and energy at one clock as lines in the number of sequences: a + b·n (s, J)."""

    time_s: tuple[float, float]
    energy_j: tuple[float, float]

    def step_s(self, sequences: int) -> float:
        """Predicted step time (s) with `sequences` running."""
        return self.time_s[0] + self.time_s[1] * sequences

    def step_energy_j(self, sequences: int) -> float:
        """Predicted step energy (J) with `sequences` running."""
        return self.energy_j[0] + self.energy_j[1] * sequences


def fit_steps(sequences: Sequence[int], step_s: Sequence[float], step_energy_j: Sequence[float]) -> StepFit:
    """Least-squares lines of measured steps' time and energy over the sequences in them (one clock).

    With one distinct sequence count the slope is 0 (a flat line through the mean): the data cannot tell more."""
    n = np.asarray(sequences, dtype=float)
    if len(n) == 0:
        raise ValueError("no steps to fit")
    if len(set(n.tolist())) < 2:
        return StepFit((float(np.mean(step_s)), 0.0), (float(np.mean(step_energy_j)), 0.0))
    design = np.column_stack([np.ones_like(n), n])
    t = np.linalg.lstsq(design, np.asarray(step_s, dtype=float), rcond=None)[0]
    e = np.linalg.lstsq(design, np.asarray(step_energy_j, dtype=float), rcond=None)[0]
    return StepFit((float(t[0]), float(t[1])), (float(e[0]), float(e[1])))
