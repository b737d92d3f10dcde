"""Queueing maths of static batching, shared by the runner, the search and the server.

The definitions here are the runner's semantics written as formulas; tests check them against the batcher.
A window of n requests (n a multiple of b, `Traffic.window_requests`) is served as n/b batches; batch k
starts when its last request has arrived and batch k−1 has ended. The window starts at the first arrival
(0) and ends when the last batch ends; idle time between batches draws the device's idle power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from edpilot.serving.traffic import Traffic

POISSON_DRAWS = 64  # arrival sequences per Poisson traffic (common random numbers across configs)
TRACE_DRAWS = 32  # window start offsets into a replayed trace


def uniform_fill_wait_s(batch_size: int, rate_per_s: float) -> float:
    """Mean wait (s) for a batch to fill under evenly spaced arrivals: (b − 1) / (2λ)."""
    return (batch_size - 1) / (2.0 * rate_per_s)


def keeps_up(arrivals_s: np.ndarray, mean_batch_s: float, batch_size: int) -> bool:
    """Whether a batch finishes before the next one fills: mean service ≤ b × mean inter-arrival gap.

    All-at-once (saturated) arrivals have no rate to keep up with, so they always keep up.
    """
    arrivals_s = np.asarray(arrivals_s, dtype=float)
    span_s = float(arrivals_s.max() - arrivals_s.min()) if arrivals_s.size else 0.0
    if span_s <= 0:
        return True
    mean_gap_s = span_s / (len(arrivals_s) - 1)
    return mean_batch_s <= batch_size * mean_gap_s


def batch_ends_s(ready_s: np.ndarray, service_s: ArrayLike) -> np.ndarray:
    """End time of every batch (last axis) from the time its last request arrived, with a constant service time.

    Batch k starts when its last request has arrived and batch k−1 has ended: end_k = max(ready_k, end_{k−1}) + s.
    `service_s` broadcasts against `ready_s[..., 0]` (one service time per leading index); −inf entries of
    `ready_s` after the last batch are padding and leave the real entries unchanged.
    """
    ready = np.moveaxis(np.asarray(ready_s, dtype=float), -1, 0)
    return np.moveaxis(batch_ends_first_s(ready, service_s), 0, -1)


def batch_ends_first_s(ready_s: np.ndarray, service_s: ArrayLike) -> np.ndarray:
    """`batch_ends_s` with the batch axis first (contiguous rows: one numpy step per batch, fast)."""
    ready = np.asarray(ready_s, dtype=float)
    s = np.asarray(service_s, dtype=float)
    ends = np.empty(np.broadcast_shapes(ready.shape, (1, *s.shape)))
    prev = np.full(ends.shape[1:], -np.inf)
    for k in range(ready.shape[0]):
        prev = np.maximum(ready[k], prev) + s
        ends[k] = prev
    return ends


def batch_ready_s(arrivals_s: np.ndarray, batch_size: int) -> np.ndarray:
    """Arrival time of the last request of each batch (the last batch may be partial)."""
    arrivals_s = np.asarray(arrivals_s, dtype=float)
    n = arrivals_s.shape[-1]
    last = np.minimum(np.arange(batch_size - 1, n + batch_size - 1, batch_size), n - 1)
    return arrivals_s[..., last]


def static_batch_ends_s(arrivals_s: np.ndarray, batch_size: int, service_s: float) -> np.ndarray:
    """Completion time of every request under static batching with a constant service time (no max wait)."""
    arrivals_s = np.asarray(arrivals_s, dtype=float)
    ends = batch_ends_s(batch_ready_s(arrivals_s, batch_size), service_s)
    return np.repeat(ends, batch_size, axis=-1)[..., : arrivals_s.shape[-1]]


def arrival_draws_s(traffic: Traffic, count: int, *, seed: int = 0, draws: int | None = None) -> np.ndarray:
    """Arrival times (s, first at 0) of the windows the runner would see: shape (draws, count).

    Uniform and saturated windows are deterministic (one row). Poisson windows are `draws` sequences from a
    fixed seed, so every config is judged on the same arrivals; a request's gaps are shared by every window
    length (common random numbers). A trace gives windows starting at `draws` offsets spread over it, with
    the wrap-around gap of the trace workload (its mean gap).
    """
    if traffic.arrivals == "saturated":
        return np.zeros((1, count))
    if traffic.arrivals == "uniform":
        return (np.arange(count, dtype=float) / traffic.rate_per_s)[None, :]
    if traffic.arrivals == "poisson":
        rng = np.random.default_rng(seed)
        gaps_s = rng.exponential(1.0 / traffic.rate_per_s, size=(draws or POISSON_DRAWS, count))
        gaps_s[:, 0] = 0.0
        return np.cumsum(gaps_s, axis=1)
    gaps = np.asarray(traffic.gaps_s, dtype=float)
    cycle = np.append(gaps, gaps.mean())  # the gap from the trace's last request back to its first
    offsets = np.unique(np.linspace(0, len(cycle), draws or TRACE_DRAWS, endpoint=False).astype(int))
    idx = (offsets[:, None] + np.arange(count - 1)[None, :]) % len(cycle)
    return np.concatenate([np.zeros((len(offsets), 1)), np.cumsum(cycle[idx], axis=1)], axis=1)


@dataclass(frozen=True)
class WindowForecast:
    """What the runner would observe at one config, per arrival draw: arrays of shape (..., draws)."""

    energy_per_request_j: np.ndarray
    mean_latency_s: np.ndarray
    window_s: np.ndarray
    power_w: np.ndarray
    p95_latency_s: np.ndarray | None


def forecast_window(
    arrivals_s: np.ndarray,
    batch_size: int,
    *,
    service_s: ArrayLike,
    energy_per_batch_j: ArrayLike,
    idle_power_w: ArrayLike,
    energy_scope: str = "total",
    with_p95: bool = False,
) -> WindowForecast:
    """Energy per request, latency, window length and power of windows served at batch size b.

    `arrivals_s` has shape (draws, n) with n a multiple of b; `service_s`, `energy_per_batch_j` (J) and
    `idle_power_w` (W) are scalars or arrays of shape (K,) for K configs sharing this batch size.
    """
    arrivals_s = np.atleast_2d(np.asarray(arrivals_s, dtype=float))
    n = arrivals_s.shape[-1]
    batches = -(-n // batch_size)
    s = np.asarray(service_s, dtype=float)[..., None]
    e_batch = np.asarray(energy_per_batch_j, dtype=float)[..., None]
    idle_w = np.asarray(idle_power_w, dtype=float)[..., None]
    ends = batch_ends_s(batch_ready_s(arrivals_s, batch_size), s)
    per_batch = np.full(batches, float(batch_size))
    per_batch[-1] = n - (batches - 1) * batch_size
    mean_latency_s = ends @ per_batch / n - arrivals_s.mean(axis=-1)
    p95_latency_s = None
    if with_p95:
        latencies_s = np.repeat(ends, batch_size, axis=-1)[..., :n] - arrivals_s
        p95_latency_s = np.percentile(latencies_s, 95, axis=-1)
    window_s = ends[..., -1] - arrivals_s[:, 0]
    active_j = batches * e_batch
    total_j = active_j + idle_w * np.maximum(window_s - batches * s, 0.0)
    energy_j = total_j if energy_scope == "total" else active_j + 0.0 * window_s
    return WindowForecast(
        energy_per_request_j=energy_j / n,
        mean_latency_s=mean_latency_s,
        window_s=window_s,
        power_w=total_j / np.where(window_s > 0, window_s, np.inf),
        p95_latency_s=p95_latency_s,
    )


def keeps_up_at(traffic: Traffic, batch_size: ArrayLike, service_s: ArrayLike) -> np.ndarray:
    """Whether batches of service time `service_s` (s) keep up with the traffic's mean rate (b / λ)."""
    s = np.asarray(service_s, dtype=float)
    if traffic.arrivals == "saturated":
        return np.ones_like(s, dtype=bool)
    return s <= np.asarray(batch_size, dtype=float) / traffic.rate_per_s
