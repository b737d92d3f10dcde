"""The traffic's part of a config's cost, for every config of a grid at once.

`SteadyForecast(space, traffic)` is the one definition the search and the bench oracle share: every config's
steady-state cost at the traffic (`serving.queueing.steady_latency` and `steady_energy_per_request_j`: exact for
uniform and Poisson arrivals, a long simulation for a trace), from hardware predictions — service time (s),
energy per batch (J) and idle power (W) per config. A config with utilisation ρ = λs/b ≥ 1 has no steady state:
its cost is inf; near 1 it is priced by its queue. Tests hold it equal to a long replay through the runner.

`GridForecast(space, traffic)` is the earlier definition, kept for the bench's side-by-side figure: a
32-request window from an empty queue. It draws such windows at each batch size (`queueing.arrival_draws_s`:
one row for uniform/saturated, common random numbers for Poisson, offsets into a trace), pads them to one array
and evaluates every config in one pass (`queueing.batch_ends_s`); tests hold it equal to a per-batch-size oracle
(tests/serving/window_oracle.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edpilot.objective import BoundObjective
from edpilot.serving.queueing import (
    arrival_draws_s,
    batch_ends_first_s,
    batch_ready_s,
    keeps_up_at,
    poisson_batch_wait_many,
    steady_energy_per_request_j,
    steady_latency,
    utilisation,
)
from edpilot.serving.traffic import Traffic
from edpilot.space import ConfigSpace

ARRIVAL_SEED = 20250811  # fixed: the same arrival draws for every config, round and run


@dataclass(frozen=True)
class Outlook:
    """Expected cost, energy per request (J), mean and p95 latency (s), window power (W) per config, and keeps-up."""

    cost: np.ndarray
    energy_per_request_j: np.ndarray
    mean_latency_s: np.ndarray
    p95_latency_s: np.ndarray
    power_w: np.ndarray
    keeps_up: np.ndarray
    utilisation: np.ndarray | None = None


class SteadyForecast:
    """Every config's steady-state cost at one traffic, grouped by batch size (a few numpy calls per size)."""

    def __init__(self, space: ConfigSpace, traffic: Traffic, *, energy_scope: str = "total") -> None:
        self.traffic, self.energy_scope = traffic, energy_scope
        self.batch_of = np.array([c.batch_size for c in space], dtype=float)
        self._groups = [(b, np.flatnonzero(self.batch_of == b)) for b in space.batch_sizes]
        self.latency(np.full(len(self.batch_of), np.nan))  # builds the per-batch-size tables once, up front

    def latency(self, service_s: np.ndarray, *, with_p95: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Mean and p95 latency (s) per config (inf where ρ ≥ 1; p95 nan unless asked)."""
        s = np.asarray(service_s, dtype=float)
        mean, p95 = np.empty(len(s)), np.full(len(s), np.nan)
        kind, lam, b_all = self.traffic.arrivals, self.traffic.rate_per_s, self.batch_of
        if kind in ("uniform", "poisson") and not with_p95:  # the common case, in one vectorised pass
            rho = lam * s / b_all
            if kind == "uniform":
                wait = np.where(rho < 1.0, 0.0, np.inf)
            else:
                wait = poisson_batch_wait_many(b_all, rho) / lam
            return s + (b_all - 1.0) / (2.0 * lam) + wait, p95
        for b, rows in self._groups:
            lat = steady_latency(self.traffic, b, s[rows], with_p95=with_p95)
            mean[rows] = lat.mean_s
            if with_p95:
                p95[rows] = lat.p95_s
        return mean, p95

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
        """Steady-state cost per config; `extra_latency_s` adds a transient (an inherited backlog) to the mean."""
        s = np.asarray(service_s, dtype=float)
        mean_latency_s, p95 = self.latency(s, with_p95=with_p95)
        e = steady_energy_per_request_j(
            self.traffic,
            self.batch_of,
            service_s=s,
            energy_per_batch_j=energy_per_batch_j,
            idle_power_w=idle_power_w,
            energy_scope=self.energy_scope,
        )
        rho = utilisation(self.traffic, self.batch_of, s)
        rate = 0.0 if self.traffic.arrivals == "saturated" else self.traffic.rate_per_s
        total = e
        if self.energy_scope != "total":
            total = steady_energy_per_request_j(
                self.traffic,
                self.batch_of,
                service_s=s,
                energy_per_batch_j=energy_per_batch_j,
                idle_power_w=idle_power_w,
            )
        power_w = total * rate if rate else np.asarray(energy_per_batch_j, dtype=float) / s
        with np.errstate(invalid="ignore", over="ignore"):
            cost = np.asarray(objective.cost_of(e, mean_latency_s + extra_latency_s), dtype=float)
        cost = np.where(np.isfinite(mean_latency_s), cost, np.inf)
        return Outlook(
            cost=cost,
            energy_per_request_j=e,
            mean_latency_s=mean_latency_s,
            p95_latency_s=p95,
            power_w=np.where(rho < 1.0, power_w, np.nan),
            keeps_up=rho < 1.0,
            utilisation=rho,
        )


class GridForecast:
    """Padded arrival windows of one traffic for every config of a grid, evaluated in one pass."""

    def __init__(
        self,
        space: ConfigSpace,
        traffic: Traffic,
        *,
        energy_scope: str = "total",
        draws: int | None = None,
        seed: int = ARRIVAL_SEED,
    ) -> None:
        self.traffic, self.energy_scope = traffic, energy_scope
        self.batch_of = np.array([c.batch_size for c in space], dtype=float)
        sizes = space.batch_sizes
        counts = [traffic.window_requests(b) for b in sizes]
        longest = arrival_draws_s(traffic, max(counts), seed=seed, draws=draws)  # common random numbers
        self._arrivals = {b: longest[:, :n] for b, n in zip(sizes, counts)}
        nbs = [-(-n // b) for b, n in zip(sizes, counts)]
        width, rows = max(nbs), longest.shape[0]
        ready = np.full((len(sizes), rows, width), -np.inf)
        weight = np.zeros((len(sizes), width))
        for j, (b, n, nb) in enumerate(zip(sizes, counts, nbs)):
            ready[j, :, :nb] = batch_ready_s(self._arrivals[b], b)
            weight[j, :nb] = b
            weight[j, nb - 1] = n - (nb - 1) * b
            weight[j] /= n
        pick = np.array([sizes.index(c.batch_size) for c in space])
        self._ready = np.ascontiguousarray(np.moveaxis(ready[pick], -1, 0))  # (batch, config, draw)
        self._weight = np.ascontiguousarray(weight[pick].T)
        self._last = np.array(nbs)[pick]
        self._batches = self._last.astype(float)[:, None]
        self._requests = np.array(counts, dtype=float)[pick][:, None]
        self._mean_arrival_s = np.stack([self._arrivals[b].mean(axis=1) for b in sizes])[pick]
        self._pick, self._sizes = pick, sizes

    def window_ends_s(self, service_s: np.ndarray) -> np.ndarray:
        """Batch end times (s) per batch, config and draw (padding after each config's last batch)."""
        return batch_ends_first_s(self._ready, np.asarray(service_s, dtype=float)[:, None])

    def outlook(
        self,
        objective: BoundObjective,
        *,
        service_s: np.ndarray,
        energy_per_batch_j: np.ndarray,
        idle_power_w: np.ndarray,
        with_p95: bool = False,
    ) -> Outlook:
        """Expected cost (mean over the arrival draws of each window's cost) and what goes with it, per config."""
        s = np.asarray(service_s, dtype=float)
        ends = self.window_ends_s(s)
        mean_latency_s = np.einsum("nkd,nk->kd", ends, self._weight) - self._mean_arrival_s
        window_s = ends[self._last - 1, np.arange(len(s))]
        active_j = self._batches * np.asarray(energy_per_batch_j, dtype=float)[:, None]
        idle_s = np.maximum(window_s - self._batches * s[:, None], 0.0)
        total_j = active_j + np.asarray(idle_power_w, dtype=float)[:, None] * idle_s
        energy_j = total_j if self.energy_scope == "total" else np.broadcast_to(active_j, total_j.shape)
        e = energy_j / self._requests
        cost = np.asarray(objective.cost_of(e, mean_latency_s)).mean(axis=1)
        power_w = (total_j / np.where(window_s > 0, window_s, np.inf)).mean(axis=1)
        p95 = self._p95_s(ends) if with_p95 else np.full(len(s), np.nan)
        return Outlook(
            cost=cost,
            energy_per_request_j=e.mean(axis=1),
            mean_latency_s=mean_latency_s.mean(axis=1),
            p95_latency_s=p95,
            power_w=power_w,
            keeps_up=keeps_up_at(self.traffic, self.batch_of, s),
        )

    def _p95_s(self, ends: np.ndarray) -> np.ndarray:
        """Mean over draws of each window's p95 latency (s), per config (the runner's `np.percentile`)."""
        out = np.empty(ends.shape[1])
        for j, b in enumerate(self._sizes):
            rows = np.flatnonzero(self._pick == j)
            arrivals = self._arrivals[b]
            n = arrivals.shape[1]
            per_request = np.repeat(np.moveaxis(ends[: -(-n // b), rows], 0, -1), b, axis=-1)[..., :n]
            out[rows] = np.percentile(per_request - arrivals, 95, axis=-1).mean(axis=-1)
        return out
