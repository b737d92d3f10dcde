"""Queueing maths of static batching, shared by the runner, the search and the server.

The definitions here are the runner's semantics written as formulas; tests check them against the batcher.
"""

from __future__ import annotations

import numpy as np


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


def static_batch_ends_s(arrivals_s: np.ndarray, batch_size: int, service_s: float) -> np.ndarray:
    """Completion time of every request under static batching with a constant service time (no max wait).

    Batch k starts when its last request has arrived and batch k−1 has ended: end_k = max(A_k, end_{k−1}) + s,
    which unrolls to end_k = (k+1)·s + max_{j≤k}(A_j − j·s) and is computed without a Python loop.
    """
    arrivals_s = np.asarray(arrivals_s, dtype=float)
    n = arrivals_s.shape[-1]
    last = np.minimum(np.arange(batch_size - 1, n + batch_size - 1, batch_size), n - 1)
    ready_s = arrivals_s[..., last]
    k = np.arange(last.size)
    ends = (k + 1) * service_s + np.maximum.accumulate(ready_s - k * service_s, axis=-1)
    return np.repeat(ends, batch_size, axis=-1)[..., :n]
