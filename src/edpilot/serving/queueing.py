"""Queueing maths of static batching, shared by the runner, the search, the bench oracle and the server.

The definitions here are the runner's semantics written as formulas; tests check them against the batcher.
Batch k starts when its last request has arrived and batch k−1 has ended: end_k = max(ready_k, end_{k−1}) + s.

**Steady state** (what a live server and the replay runner settle into; `steady_*`): one continuous stream at
rate λ, served by batches of b with service time s, utilisation ρ = λs/b. For ρ < 1 a request's mean latency is
s + the mean wait for its batch to fill ((b − 1)/2λ for uniform and Poisson arrivals) + the mean wait of a full
batch for the server, W. W is a Lindley recursion with Erlang-b gaps between batches: 0 for uniform arrivals,
exact for Poisson (the E_b/D/1 queue, from the b − 1 roots of (1 − s)^b = e^{−sbρ}, `poisson_batch_wait`), and
a long simulation (≥ 200 000 arrivals, one fixed gap sequence for every ρ) for a replayed trace. Energy per
request is exact for any arrival process: E_batch/b + P_idle·(1/λ − s/b) (`total` scope), E_batch/b (`active`).
ρ ≥ 1 has no steady state: the queue grows without bound.

**Windows** (`arrival_draws_s`, `batch_ready_s`, `batch_ends_s`): the earlier definition — n requests from an
empty queue, the window starting at the first arrival — kept for the bench's side-by-side figure
(`search.forecast.GridForecast`) and saturated arrivals.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from edpilot.serving.traffic import Traffic

POISSON_DRAWS = 64  # arrival sequences per Poisson traffic (common random numbers across configs)
TRACE_DRAWS = 32  # window start offsets into a replayed trace
STEADY_ARRIVALS = 200_000  # arrivals simulated per batch size where no exact formula exists (p95, traces)
STEADY_SEED = 20251204  # the one gap sequence every ρ of a simulated table shares (common random numbers)
RHO_GRID = 1.0 - np.geomspace(1.0, 0.002, 48)  # utilisations of a simulated table, dense toward 1


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


def keeps_up_at(traffic: Traffic, batch_size: ArrayLike, service_s: ArrayLike) -> np.ndarray:
    """Whether batches of service time `service_s` (s) keep up with the traffic's mean rate (b / λ)."""
    s = np.asarray(service_s, dtype=float)
    if traffic.arrivals == "saturated":
        return np.ones_like(s, dtype=bool)
    return s <= np.asarray(batch_size, dtype=float) / traffic.rate_per_s


def utilisation(traffic: Traffic, batch_size: ArrayLike, service_s: ArrayLike) -> np.ndarray:
    """ρ = λ·s/b: the fraction of time the server is busy in steady state (0 for saturated arrivals)."""
    s = np.asarray(service_s, dtype=float)
    if traffic.arrivals == "saturated":
        return np.zeros_like(s)
    rho: np.ndarray = traffic.rate_per_s * s / np.asarray(batch_size, dtype=float)
    return rho


def poisson_batch_wait(batch_size: int, rho: ArrayLike) -> np.ndarray:
    """`poisson_batch_wait_exact` read from a table built once per batch size: (1 − ρ)·λW, smooth in
    −log(1 − ρ), on 4000 points up to ρ = 1 − 10⁻⁶ (interpolation error below 10⁻⁶ relative); inf where ρ ≥ 1."""
    rho = np.asarray(rho, dtype=float)
    grid_t, scaled = _poisson_wait_table(int(batch_size))
    r = np.clip(rho, 0.0, 1.0 - 1e-12)
    with np.errstate(divide="ignore"):
        wait = np.interp(-np.log1p(-r), grid_t, scaled) / (1.0 - r)
    return np.where(rho < 1.0, wait, np.inf)


def poisson_batch_wait_many(batch_size: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """`poisson_batch_wait` for configs of several batch sizes at once (one lookup on the shared grid)."""
    sizes = tuple(int(b) for b in np.unique(batch_size))
    tables = _stacked_tables(sizes)
    row = np.searchsorted(np.array(sizes), batch_size)
    r = np.clip(np.nan_to_num(rho, nan=0.0), 0.0, 1.0 - 1e-12)
    t = -np.log1p(-r)
    pos = np.minimum(t / _T_STEP, _T_POINTS - 1.000001)
    i = pos.astype(int)
    frac = pos - i
    scaled = tables[row, i] * (1.0 - frac) + tables[row, i + 1] * frac
    return np.where(rho < 1.0, scaled / (1.0 - r), np.where(np.isnan(rho), np.nan, np.inf))


_T_POINTS = 4000
_T_MAX = -float(np.log(1e-6))
_T_STEP = _T_MAX / (_T_POINTS - 1)


@lru_cache(maxsize=32)
def _stacked_tables(sizes: tuple[int, ...]) -> np.ndarray:
    return np.stack([_poisson_wait_table(b)[1] for b in sizes])


@lru_cache(maxsize=128)
def _poisson_wait_table(batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    grid_t = np.linspace(0.0, _T_MAX, _T_POINTS)
    rho = -np.expm1(-grid_t)
    return grid_t, (1.0 - rho) * poisson_batch_wait_exact(batch_size, np.minimum(rho, 1.0 - 1e-12))


def poisson_batch_wait_exact(batch_size: int, rho: ArrayLike) -> np.ndarray:
    """λ·W: the mean wait of a full batch for the server, in mean inter-arrival gaps, under Poisson arrivals.

    Exact for the E_b/D/1 queue (gaps between batches Erlang-b, service deterministic): with x = bρ,
    λW = Σ_j 1/(1 − z_j) + (x² − b(b − 1)) / (2(b − x)), over the b − 1 roots z_j ≠ 1 in the unit disk of
    z^b = e^{−x(1 − z)} (z_j = ω_j·e^{−ρ(1 − z_j)}, ω_j the b-th roots of unity; Newton from the fixed point).
    b = 1 gives Pollaczek–Khinchine's ρ²/(2(1 − ρ)). inf where ρ ≥ 1.
    """
    rho = np.asarray(rho, dtype=float)
    b = int(batch_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = b * rho
        out = (x * x - b * (b - 1)) / (2.0 * (b - x))
        if b > 1:
            r = np.clip(rho, 0.0, 1.0 - 1e-12)[..., None]
            omega = np.exp(2j * np.pi * np.arange(1, b) / b)
            z = omega * np.exp(-r)
            for _ in range(4):
                z = omega * np.exp(-r * (1.0 - z))
            for _ in range(8):
                g = omega * np.exp(-r * (1.0 - z))
                z = z - (z - g) / (1.0 - r * g)
            out = out + np.sum(1.0 / (1.0 - z), axis=-1).real
    return np.where(rho < 1.0, np.maximum(out, 0.0), np.inf)


@dataclass(frozen=True)
class SteadyTable:
    """λ·W and λ·p95(fill wait + W) over `RHO_GRID` for one batch size, from one long simulated gap sequence."""

    rho: np.ndarray
    wait: np.ndarray
    p95_queue: np.ndarray
    mean_fill: float

    def at(self, rho: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(λ·W, λ·p95 of fill + W) at utilisation `rho`: (1 − ρ)·value interpolated, inf where ρ ≥ 1."""
        rho = np.asarray(rho, dtype=float)
        r = np.clip(rho, 0.0, 1.0 - 1e-12)
        t, grid = -np.log1p(-r), -np.log1p(-self.rho)
        with np.errstate(divide="ignore", invalid="ignore"):
            wait = np.interp(t, grid, (1 - self.rho) * self.wait) / (1 - r)
            p95 = np.interp(t, grid, (1 - self.rho) * self.p95_queue) / (1 - r)
        # Past the grid's last point the queue grows as 1/(1 − ρ); below it, as interpolated.
        ok = rho < 1.0
        return np.where(ok, wait, np.inf), np.where(ok, np.maximum(p95, self.p95_queue[0]), np.inf)


def simulated_table(unit_gaps: np.ndarray, batch_size: int) -> SteadyTable:
    """A `SteadyTable` from inter-arrival gaps in units of their mean (cycled to `STEADY_ARRIVALS`).

    Batch k waits W_k = max(0, W_{k−1} + s − (ready_k − ready_{k−1})) for the server: with S the partial sums of
    s − gap, W = S − min(0, running min of S) (one cumulative pass per ρ). The first tenth is burn-in.
    """
    b = int(batch_size)
    reps = -(-STEADY_ARRIVALS // len(unit_gaps))
    gaps = np.tile(np.asarray(unit_gaps, dtype=float), reps)[: (STEADY_ARRIVALS // b) * b].reshape(-1, b)
    between = gaps.sum(axis=1)  # ready_k − ready_{k−1}: the b gaps that fill batch k
    # fill wait of request j of a batch: the gaps after it up to the batch's last request
    fill = np.cumsum(gaps[:, ::-1], axis=1)[:, ::-1] - gaps
    burn = len(between) // 10
    sample = slice(burn, burn + min(len(between) - burn, 20_000))
    wait, p95 = np.empty(len(RHO_GRID)), np.empty(len(RHO_GRID))
    for i, rho in enumerate(RHO_GRID):
        walk = np.cumsum(b * rho - between)
        w = walk - np.minimum(np.minimum.accumulate(walk), 0.0)
        wait[i] = w[burn:].mean()
        p95[i] = np.percentile((fill[sample] + w[sample, None]).ravel(), 95)
    return SteadyTable(RHO_GRID, wait, p95, float(fill[burn:].mean()))


@lru_cache(maxsize=64)
def _table(kind: str, batch_size: int, unit_gaps: tuple[float, ...] | None) -> SteadyTable:
    if kind == "poisson":
        gaps = np.random.default_rng(STEADY_SEED).exponential(1.0, size=STEADY_ARRIVALS)
    else:
        assert unit_gaps is not None
        gaps = np.asarray(unit_gaps)
    return simulated_table(gaps, batch_size)


def steady_table(traffic: Traffic, batch_size: int) -> SteadyTable:
    """The simulated table of a Poisson or trace traffic at batch size b (cached: built once per process)."""
    unit = None
    if traffic.arrivals == "trace":
        assert traffic.gaps_s is not None
        gaps = np.append(np.asarray(traffic.gaps_s, dtype=float), 1.0 / traffic.rate_per_s)
        unit = tuple(float(g) for g in gaps * traffic.rate_per_s)
    return _table(traffic.arrivals, int(batch_size), unit)


@lru_cache(maxsize=128)
def _uniform_p95_fill(batch_size: int) -> float:
    """p95 of the fill wait over a batch's requests, in gaps (request j waits b − 1 − j gaps)."""
    return float(np.percentile(batch_size - 1 - np.arange(batch_size), 95))


@dataclass(frozen=True)
class SteadyLatency:
    """Mean and p95 latency (s) per config in steady state, and the mean wait of a full batch W (s)."""

    mean_s: np.ndarray
    p95_s: np.ndarray
    wait_s: np.ndarray


def steady_latency(traffic: Traffic, batch_size: int, service_s: ArrayLike, *, with_p95: bool = False) -> SteadyLatency:
    """Steady-state latency of configs sharing batch size b: s + mean fill wait + W; inf where ρ ≥ 1.

    Saturated arrivals have no rate: each round's requests all arrive at its start (the window semantics).
    """
    s = np.asarray(service_s, dtype=float)
    b = int(batch_size)
    lam = traffic.rate_per_s
    rho = utilisation(traffic, b, s)
    if traffic.arrivals == "saturated":
        n = traffic.window_requests(b)
        ends = np.arange(1, n // b + 1)[:, None] * s[None, ...] if s.ndim else np.arange(1, n // b + 1) * s
        mean = s * (n // b + 1) / 2.0
        p95 = np.percentile(np.repeat(np.atleast_2d(ends.T), b, axis=-1), 95, axis=-1).reshape(s.shape)
        return SteadyLatency(mean, p95, np.zeros_like(s))
    if traffic.arrivals == "uniform":
        wait = np.where(rho < 1.0, 0.0, np.inf)
        p95 = s + _uniform_p95_fill(b) / lam + wait if with_p95 else np.full_like(s, np.nan)
        return SteadyLatency(s + (b - 1) / (2.0 * lam) + wait, p95, wait)
    table = steady_table(traffic, b) if (with_p95 or traffic.arrivals == "trace") else None
    if traffic.arrivals == "poisson":
        wait = poisson_batch_wait(b, rho) / lam
        fill = (b - 1) / (2.0 * lam)
    else:
        assert table is not None
        wait, fill = table.at(rho)[0] / lam, table.mean_fill / lam
    p95 = s + table.at(rho)[1] / lam if table is not None else np.full_like(s, np.nan)
    return SteadyLatency(s + fill + wait, p95, wait)


def steady_energy_per_request_j(
    traffic: Traffic,
    batch_size: ArrayLike,
    *,
    service_s: ArrayLike,
    energy_per_batch_j: ArrayLike,
    idle_power_w: ArrayLike,
    energy_scope: str = "total",
) -> np.ndarray:
    """Energy per request (J) in steady state: batch energy / b, plus idle power × idle time per request (`total`)."""
    b = np.asarray(batch_size, dtype=float)
    active: np.ndarray = np.asarray(energy_per_batch_j, dtype=float) / b
    if energy_scope != "total" or traffic.arrivals == "saturated":
        return active + 0.0 * np.asarray(service_s, dtype=float)
    idle_s = np.maximum(1.0 / traffic.rate_per_s - np.asarray(service_s, dtype=float) / b, 0.0)
    total: np.ndarray = active + np.asarray(idle_power_w, dtype=float) * idle_s
    return total


def backlog_delay_s(backlog: ArrayLike, batch_size: ArrayLike, service_s: ArrayLike, rate_per_s: float) -> np.ndarray:
    """Request-seconds of waiting added by inheriting `backlog` queued requests (beyond a steady queue).

    While draining the server is busy: the backlog shrinks at b/s − λ requests per second, so it takes
    T = q / (b/s − λ) and adds q·T/2 request-seconds. inf where the config cannot keep up (ρ ≥ 1).
    """
    q = np.asarray(backlog, dtype=float)
    drain = np.asarray(batch_size, dtype=float) / np.asarray(service_s, dtype=float) - rate_per_s
    delay = np.where(drain > 0, q * q / (2.0 * np.where(drain > 0, drain, 1.0)), np.inf)
    return np.where(q > 0, delay, 0.0)
