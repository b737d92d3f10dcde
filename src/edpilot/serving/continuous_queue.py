"""Steady-state queueing maths of continuous batching: latency and energy per request at a traffic.

The hardware's answer is a decode step: `step_s` seconds and `step_energy_j` joules, the means a round measured
over its steps (the steps where a request joins carry its prefill). A request joins at the step boundary after it
arrives (a wait of half a step when one is running), then decodes one token per step, `output_tokens` steps in
all: its service is D = output_tokens · step_s, the same for every request. With `slots` sequences at most this is
an M/D/c queue (c = slots) for Poisson arrivals and D/D/c for uniform ones:

- the offered load a = λ·D sequences, utilisation ρ = a / c (ρ ≥ 1: the queue grows without bound);
- the wait for a slot: Erlang's C(c, a) over (c/D − λ), halved for deterministic service (Allen–Cunneen, exact
  at c = 1; the Erlang sum is the M/M/c one); none with uniform arrivals below capacity;
- the fraction of time a step is running, P_busy = 1 − P₀ (P₀ of M/M/c, which is exp(−a) far from capacity, as
  it is for any service time); uniform arrivals: min(1, λ·D), and they find a step running only once requests
  overlap (λ·D ≥ 1);
- energy per request: the board's mean power ÷ λ, with steps running P_busy of the time at step_energy_j /
  step_s and idle power the rest (`total`), or the steps' energy alone (`active`): P_busy · step_energy_j /
  (step_s · λ).

Saturated arrivals (a round's requests all at its start) run in waves of `slots`; a trace is priced at its mean
rate as Poisson. Measured against the simulator's replay (docs/serving.md): mean latency within 2–3 % and energy
per request within 2 % where the queue is stable. What it leaves out: a step with more sequences is longer, and a
request spends more of its steps in those (it is in all of them), so the mean latency runs 1–2 % low at high load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from edpilot.serving.traffic import Traffic


@dataclass(frozen=True)
class ContinuousSteady:
    """Per config: mean and p95 latency (s), energy per request (J), board power (W), utilisation, busy fraction."""

    mean_latency_s: np.ndarray
    p95_latency_s: np.ndarray
    energy_per_request_j: np.ndarray
    power_w: np.ndarray
    utilisation: np.ndarray
    busy: np.ndarray

    @property
    def keeps_up(self) -> np.ndarray:
        """Whether the queue is stable (ρ < 1)."""
        return self.utilisation < 1.0


def steady_continuous(
    traffic: Traffic,
    slots: ArrayLike,
    *,
    step_s: ArrayLike,
    step_energy_j: ArrayLike,
    idle_power_w: ArrayLike,
    energy_scope: str = "total",
) -> ContinuousSteady:
    """The steady state of continuous batching with `slots` sequences at most, per config (numpy arrays)."""
    c = np.asarray(slots, dtype=float)
    s, e = np.broadcast_arrays(np.asarray(step_s, dtype=float), np.asarray(step_energy_j, dtype=float))
    c, s, e, idle_w = np.broadcast_arrays(c, s, e, np.asarray(idle_power_w, dtype=float))
    tokens = float(traffic.output_tokens)
    service_s = tokens * s
    busy_w = e / s
    if traffic.arrivals == "saturated":
        n = traffic.requests_per_round
        waves = np.ceil(n / c)
        mean = service_s * (waves + 1.0) / 2.0
        ones = np.ones_like(s)
        return ContinuousSteady(mean, service_s * waves, tokens * e / c, busy_w, 0.0 * s, ones)
    lam = traffic.rate_per_s
    load = lam * service_s
    rho = load / c
    stable = rho < 1.0
    if traffic.arrivals == "uniform":  # evenly spaced: an arrival finds a step running only once requests overlap
        busy = np.minimum(1.0, load)
        seen_busy = np.where(load >= 1.0, 1.0, 0.0)
        wait_s = np.zeros_like(s)
        wait95_s = np.zeros_like(s)
    else:
        p_zero, p_wait = _erlang(c, np.where(stable, load, 0.0))
        busy = seen_busy = 1.0 - p_zero  # Poisson arrivals see time averages
        rate = 2.0 * np.where(stable, c / service_s - lam, 1.0)  # the wait's tail, twice M/M/c's for D
        wait_s = p_wait / rate
        wait95_s = np.maximum(np.log(np.maximum(20.0 * p_wait, 1.0)) / rate, 0.0)
    join_s = 0.5 * s * seen_busy
    mean = np.where(stable, service_s + join_s + wait_s, np.inf)
    p95 = np.where(stable, service_s + s + wait95_s, np.inf)
    power_w = busy * busy_w + (1.0 - busy) * idle_w
    active_j = busy * busy_w / lam
    energy = power_w / lam if energy_scope == "total" else active_j
    return ContinuousSteady(mean, p95, np.where(stable, energy, np.inf), np.where(stable, power_w, np.nan), rho, busy)


def _erlang(servers: np.ndarray, load: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P₀ and Erlang's C (the chance an arrival waits) of M/M/c with c = `servers` and offered load `load` < c."""
    c = np.maximum(np.round(servers), 1.0)
    a = np.maximum(load, 1e-300)
    n = np.arange(int(c.max()) + 1, dtype=float)
    log_fact = np.array([math.lgamma(k + 1.0) for k in n])
    log_terms = n[:, None] * np.log(a.ravel())[None, :] - log_fact[:, None]  # log aⁿ/n!, n = 0 … max c
    head = np.where(n[:, None] < c.ravel()[None, :], log_terms, -np.inf)
    peak = head.max(axis=0)
    log_head = (peak + np.log(np.exp(head - peak).sum(axis=0))).reshape(c.shape)  # log Σ_{n<c} aⁿ/n!
    log_tail = c * np.log(a) - np.array([math.lgamma(k + 1.0) for k in c.ravel()]).reshape(c.shape)
    log_tail = log_tail + np.log(c / np.maximum(c - a, 1e-300))  # aᶜ/c! · c/(c − a)
    log_total = np.logaddexp(log_head, log_tail)
    p_zero = np.where(load > 0, np.exp(-log_total), 1.0)
    p_wait = np.where(load > 0, np.exp(log_tail - log_total), 0.0)
    return p_zero, p_wait
