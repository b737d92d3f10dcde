"""An independent oracle for the window definition: n requests from an empty queue, written per request and
per batch size, the way the runner serves them. The search's `GridForecast` evaluates every config at once;
tests hold the two equal, and this against the runner."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from edpilot.serving.queueing import batch_ends_s, batch_ready_s


def uniform_fill_wait_s(batch_size: int, rate_per_s: float) -> float:
    """Mean wait (s) for a batch to fill under evenly spaced arrivals: (b − 1) / (2λ)."""
    return (batch_size - 1) / (2.0 * rate_per_s)


def static_batch_ends_s(arrivals_s: np.ndarray, batch_size: int, service_s: float) -> np.ndarray:
    """Completion time of every request under static batching with a constant service time (no max wait)."""
    arrivals_s = np.asarray(arrivals_s, dtype=float)
    ends = batch_ends_s(batch_ready_s(arrivals_s, batch_size), service_s)
    return np.repeat(ends, batch_size, axis=-1)[..., : arrivals_s.shape[-1]]


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
