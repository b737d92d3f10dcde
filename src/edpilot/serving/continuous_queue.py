"""Steady-state queueing maths of continuous batching: latency and energy per request at a traffic.

The hardware's answer is a decode step whose time and energy depend on how many sequences are in it: `step_s[i, n-1]`
seconds and `step_energy_j[i, n-1]` joules for config i with n active sequences (a 1-D array: the same at every
occupancy; the steps where a request joins carry its prefill). A request joins at the step boundary after it
arrives (a wait of half a step when one is running), then decodes one token per step, `output_tokens` steps in
all; a request's latency is its wait for a slot, half a step to join when one is running, and its service.
With `slots` = c sequences at most:

- capacity: the most tokens per second is c / s(c) (a step's time per sequence falls as it fills), so a config
  keeps up iff λ·k·s(c) < c (k output tokens); `utilisation` is λ·k·s(c) / c, the load over that capacity;
- Poisson arrivals: the number of requests in the system is a birth–death chain. With j ≤ c sequences each makes
  a token every s(j), so requests leave at j / (k·s(j)) per second — a processor-sharing queue whose rate depends
  on the occupancy, and whose occupancy below the slots does not depend on the service being deterministic
  (insensitivity) — and past c the queue grows geometrically at ratio ρ. π(n), the fraction of time n sequences
  are in service, and the mean queue follow; the wait for a slot is the queue over λ (Little), halved for
  deterministic service (Allen–Cunneen, exact at c = 1), and a request's service D = (mean sequences in service)
  / λ: its steps are the longer ones of the occupancy it finds;
- uniform arrivals: ⌊a⌋ or ⌈a⌉ sequences in service, the offered load a found by bisection where the steps make
  λ·k tokens a second; no wait below capacity;
- energy per request: the board's mean power ÷ λ, Σₙ π(n)·e(n)/s(n) while steps run and idle power for π(0)
  (`total`), or the steps' alone (`active`).

Saturated arrivals (a round's requests all at its start) run in waves of `slots`; a trace is priced at its mean
rate as Poisson. Measured against the simulator's replay in docs/serving.md ("Measured: tuning (clock, slots)
under continuous batching").
"""

from __future__ import annotations

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
    """The steady state of continuous batching with `slots` sequences at most, per config (numpy arrays).

    `step_s` and `step_energy_j` hold per config either one step (s, J) for every occupancy or a row over
    occupancy n = 1, 2, … (at least up to the config's slots)."""
    c = np.atleast_1d(np.asarray(slots, dtype=float))
    s, e = _curves(step_s, step_energy_j, len(c), int(c.max()))
    idle_w = np.broadcast_to(np.asarray(idle_power_w, dtype=float), c.shape)
    scalar = np.ndim(slots) == 0 and np.ndim(step_s) == 0
    rows = np.arange(len(c))
    top = np.round(c).astype(int) - 1
    s_full, e_full = s[rows, top], e[rows, top]
    tokens = float(traffic.output_tokens)
    if traffic.arrivals == "saturated":
        n = traffic.requests_per_round
        waves = np.ceil(n / c)
        service_s = tokens * s_full
        steady = ContinuousSteady(
            service_s * (waves + 1.0) / 2.0,
            service_s * waves,
            tokens * e_full / c,
            e_full / s_full,
            0.0 * s_full,
            np.ones_like(s_full),
        )
        return _squeezed(steady) if scalar else steady
    lam = traffic.rate_per_s
    rho = lam * tokens * s_full / c
    stable = rho < 1.0
    if traffic.arrivals == "uniform":  # evenly spaced: between ⌊a⌋ and ⌈a⌉ sequences, no wait below capacity
        load = _steady_load(s, lam * tokens, np.where(stable, c, 0.0))
        pi = _between(load, s.shape[1])
        seen_busy = np.where(load >= 1.0, 1.0, 0.0)  # an arrival finds a step running once requests overlap
        queued = p_wait = np.zeros_like(s_full)
    else:
        pi, queued, p_wait = _birth_death(c, s, lam * tokens, stable)
        load = np.sum(pi * np.arange(s.shape[1] + 1), axis=1)
        seen_busy = 1.0 - pi[:, 0]  # Poisson arrivals see time averages
    busy = 1.0 - pi[:, 0]
    busy_w = np.sum(pi[:, 1:] * e / s, axis=1)
    service_s = np.where(stable, load / lam, np.inf)
    step_seen_s = np.sum(pi[:, 1:] * s, axis=1) / np.maximum(busy, 1e-300)  # the step an arrival finds running
    wait_s = 0.5 * queued / lam  # Little, halved for deterministic service (Allen–Cunneen)
    rate = 2.0 * np.where(stable, c / np.where(stable, service_s, 1.0) - lam, 1.0)  # the wait's tail, D: twice
    wait95_s = np.maximum(np.log(np.maximum(20.0 * p_wait, 1.0)) / rate, 0.0)
    mean = np.where(stable, service_s + 0.5 * step_seen_s * seen_busy + wait_s, np.inf)
    p95 = np.where(stable, service_s + s_full + wait95_s, np.inf)
    power_w = busy_w + pi[:, 0] * idle_w
    energy = power_w / lam if energy_scope == "total" else busy_w / lam
    steady = ContinuousSteady(mean, p95, np.where(stable, energy, np.inf), np.where(stable, power_w, np.nan), rho, busy)
    return _squeezed(steady) if scalar else steady


def _curves(step_s: ArrayLike, step_energy_j: ArrayLike, configs: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Step time and energy as (configs, occupancies) arrays: a 1-D input is the same at every occupancy."""
    time, energy = (np.asarray(v, dtype=float) for v in (step_s, step_energy_j))
    width = max([slots] + [v.shape[1] for v in (time, energy) if v.ndim == 2])
    time, energy = (v if v.ndim == 2 else v.reshape(-1, 1) for v in (time, energy))
    return np.broadcast_to(time, (configs, width)), np.broadcast_to(energy, (configs, width))


def _birth_death(
    c: np.ndarray, s: np.ndarray, tokens_per_s: float, stable: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson arrivals: π(n), n = 0 … width, the fraction of time n sequences are in service; the mean queue
    (requests); the chance an arrival waits. A birth–death chain: with j ≤ c sequences each makes a token every
    s(j), so requests finish at j / (k·s(j)) per second; past c the queue grows at ratio ρ = λ·k·s(c)/c."""
    width = s.shape[1]
    n = np.arange(1, width + 1, dtype=float)[None, :]
    inside = n <= c[:, None]
    log_ratio = np.log(tokens_per_s * s) - np.log(n)  # log λ/μ_j = log(λ·k·s(j) / j)
    log_terms = np.concatenate([np.zeros((len(c), 1)), np.cumsum(np.where(inside, log_ratio, 0.0), axis=1)], axis=1)
    log_terms[:, 1:] = np.where(inside, log_terms[:, 1:], -np.inf)
    rows = np.arange(len(c))
    top = np.round(c).astype(int)
    r = np.where(stable, tokens_per_s * s[rows, top - 1] / c, 0.0)  # the queue's ratio past the slots: ρ
    log_top = log_terms[rows, top]
    with np.errstate(divide="ignore"):
        log_tail = log_top + np.log(r) - np.log1p(-r)  # Σ_{m>c} of π(c)·rᵐ⁻ᶜ, in log
    peak = np.maximum(log_terms.max(axis=1), log_tail)
    total = np.exp(log_terms - peak[:, None]).sum(axis=1) + np.exp(log_tail - peak)
    pi = np.exp(log_terms - peak[:, None]) / total[:, None]
    tail = np.exp(log_tail - peak) / total  # P(more than c in the system)
    pi[rows, top] += tail
    queued = tail / np.maximum(1.0 - r, 1e-300)  # Σ (m − c) π(m) over m > c: π(c)·r/(1−r)²
    return pi, np.where(stable, queued, np.inf), pi[rows, top]


def _steady_load(s: np.ndarray, tokens_per_s: float, c: np.ndarray) -> np.ndarray:
    """Uniform arrivals: the mean sequences in service a in (0, c) at which the steps make `tokens_per_s` tokens."""
    lo, hi = np.zeros_like(c), c.copy()
    per_sequence = np.arange(1, s.shape[1] + 1) / s  # tokens per second with n sequences in a step
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        short = np.sum(_between(mid, s.shape[1])[:, 1:] * per_sequence, axis=1) < tokens_per_s
        lo, hi = np.where(short, mid, lo), np.where(short, hi, mid)
    load: np.ndarray = 0.5 * (lo + hi)
    return load


def _between(load: np.ndarray, width: int) -> np.ndarray:
    """π(n), n = 0 … width, for evenly spaced arrivals at offered load a: ⌊a⌋ or ⌈a⌉ sequences in service."""
    n = np.arange(width + 1, dtype=float)[None, :]
    low = np.floor(load)[:, None]
    frac = (load - np.floor(load))[:, None]
    return np.where(n == low, 1.0 - frac, 0.0) + np.where(n == low + 1.0, frac, 0.0)


def _squeezed(steady: ContinuousSteady) -> ContinuousSteady:
    """One config's steady state as 0-d arrays."""
    return ContinuousSteady(*(np.asarray(v).reshape(()) for v in vars(steady).values()))
