"""The batcher and one measurement window: serve a config's requests and turn them into an Observation.

Static batching (DESIGN.md): the batcher waits until b requests are queued (or, with `max_wait_s`, until
the oldest has waited that long), runs them as one batch, and requests arriving meanwhile wait for the
next batch. Latency = batch completion − arrival. Energy per request = device energy over the window ÷
requests (`total` scope, idle time between batches included) or batch energy only (`active`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edpilot.clock import Clock
from edpilot.engine.base import Engine
from edpilot.errors import ConfigError, EngineError
from edpilot.hardware.base import Device
from edpilot.objective import Observation
from edpilot.space import Config
from edpilot.workload import Request, RequestSource

log = logging.getLogger(__name__)

EnergyScope = Literal["total", "active"]
ENERGY_SCOPES: tuple[str, ...] = ("total", "active")


@dataclass(frozen=True)
class ServedBatch:
    """One batch as it happened: its requests, start/end times (s) and device energy during it (J)."""

    requests: tuple[Request, ...]
    start_s: float
    end_s: float
    energy_j: float | None
    ttfts_s: tuple[float | None, ...]
    errors: tuple[str, ...] = ()


def serve_window(
    requests: Sequence[Request],
    *,
    batch_size: int,
    engine: Engine,
    device: Device,
    clock: Clock,
    window_start_s: float,
    max_wait_s: float | None = None,
) -> list[ServedBatch]:
    """Serve `requests` (arrival times relative to `window_start_s`) with static batching, in FIFO order."""
    batches: list[ServedBatch] = []
    i, n = 0, len(requests)
    while i < n:
        stop = min(i + batch_size, n)
        ready_s = window_start_s + requests[stop - 1].arrival_s
        if max_wait_s is not None:
            flush_s = max(window_start_s + requests[i].arrival_s + max_wait_s, clock.now_s())
            if flush_s < ready_s:
                ready_s = flush_s
                while stop > i + 1 and window_start_s + requests[stop - 1].arrival_s > flush_s:
                    stop -= 1
        clock.sleep_until(ready_s)
        batch = tuple(requests[i:stop])
        energy_before_j = device.energy_j()
        start_s = clock.now_s()
        completions = engine.generate(batch)
        end_s = clock.now_s()
        if len(completions) != len(batch):
            raise EngineError(f"engine returned {len(completions)} completions for a batch of {len(batch)}")
        energy_after_j = device.energy_j()
        energy_j = None if energy_before_j is None or energy_after_j is None else energy_after_j - energy_before_j
        errors = tuple(c.error for c in completions if c.error)
        for error in errors[:1]:
            log.warning("%d of %d requests failed, e.g.: %s", len(errors), len(batch), error)
        batches.append(ServedBatch(batch, start_s, end_s, energy_j, tuple(c.ttft_s for c in completions), errors))
        i = stop
    return batches


def summarize(
    batches: Sequence[ServedBatch],
    *,
    window_start_s: float,
    window_energy_j: float | None,
    energy_scope: EnergyScope,
    batch_size: int,
    actual_freq_mhz: float | None = None,
) -> Observation:
    """Turn served batches into an Observation (latencies, energy per request, keeps-up flag)."""
    arrivals_s = np.array([window_start_s + r.arrival_s for b in batches for r in b.requests])
    ends_s = np.array([b.end_s for b in batches for _ in b.requests])
    latencies_s = ends_s - arrivals_s
    ttfts = [
        b.start_s + t - (window_start_s + r.arrival_s)
        for b in batches
        for r, t in zip(b.requests, b.ttfts_s)
        if t is not None
    ]
    n = len(latencies_s)
    service_s = np.array([b.end_s - b.start_s for b in batches])
    batch_energy = [b.energy_j for b in batches]
    energy_per_batch_j = None if None in batch_energy else float(np.mean(batch_energy))
    window_s = batches[-1].end_s - window_start_s
    if energy_scope == "total":
        energy_j = window_energy_j
    elif energy_scope == "active":
        energy_j = None if energy_per_batch_j is None else float(np.sum(batch_energy))
    else:
        raise ConfigError(f"unknown energy scope {energy_scope!r}; choose one of: {', '.join(ENERGY_SCOPES)}")
    return Observation(
        requests=n,
        energy_per_request_j=None if energy_j is None else energy_j / n,
        mean_latency_s=float(latencies_s.mean()),
        p95_latency_s=float(np.percentile(latencies_s, 95)),
        mean_ttft_s=float(np.mean(ttfts)) if ttfts else None,
        power_w=None if window_energy_j is None else window_energy_j / window_s,
        mean_batch_s=float(service_s.mean()),
        energy_per_batch_j=energy_per_batch_j,
        window_s=float(window_s),
        keeps_up=keeps_up(arrivals_s, float(service_s.mean()), batch_size),
        actual_freq_mhz=actual_freq_mhz,
        failed_requests=sum(len(b.errors) for b in batches),
    )


def keeps_up(arrivals_s: np.ndarray, mean_batch_s: float, batch_size: int) -> bool:
    """Whether a batch finishes before the next one fills: mean service ≤ b × mean inter-arrival gap.

    All-at-once (saturated) arrivals have no rate to keep up with, so they always keep up.
    """
    span_s = float(arrivals_s.max() - arrivals_s.min())
    if span_s <= 0:
        return True
    mean_gap_s = span_s / (len(arrivals_s) - 1)
    return mean_batch_s <= batch_size * mean_gap_s


@dataclass
class Runner:
    """Measures one config: pins the frequency, serves a window of requests, returns the Observation."""

    device: Device
    engine: Engine
    clock: Clock
    workload: RequestSource
    requests_per_round: int = 32
    energy_scope: EnergyScope = "total"
    max_wait_s: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.energy_scope not in ENERGY_SCOPES:
            raise ConfigError(f"unknown energy scope {self.energy_scope!r}; choose one of: {', '.join(ENERGY_SCOPES)}")
        if self.requests_per_round < 1:
            raise ConfigError(f"requests per round must be >= 1, got {self.requests_per_round}")
        self._rng = np.random.default_rng(self.seed)
        self._warm_batch_sizes: set[int] = set()

    def window_requests(self, batch_size: int) -> int:
        """Requests in one window: at least `requests_per_round` and two full batches, a multiple of b."""
        batches = max(2, -(-self.requests_per_round // batch_size))
        return batches * batch_size

    def measure(self, config: Config) -> Observation:
        """Serve one window at `config` and summarise it; the frequency switch is inside the window."""
        requests = self.workload.requests(self.window_requests(config.batch_size), self._rng)
        if getattr(self.engine, "needs_warmup", False) and config.batch_size not in self._warm_batch_sizes:
            self.engine.generate(requests[: config.batch_size])  # untimed: compiles this batch size's graph
            self._warm_batch_sizes.add(config.batch_size)
        window_start_s = self.clock.now_s()
        energy_start_j = self.device.energy_j()
        if not self.device.read_only:
            self.device.set_freq_mhz(config.freq_mhz)
        batches = serve_window(
            requests,
            batch_size=config.batch_size,
            engine=self.engine,
            device=self.device,
            clock=self.clock,
            window_start_s=window_start_s,
            max_wait_s=self.max_wait_s,
        )
        energy_end_j = self.device.energy_j()
        window_energy_j = None if energy_start_j is None or energy_end_j is None else energy_end_j - energy_start_j
        return summarize(
            batches,
            window_start_s=window_start_s,
            window_energy_j=window_energy_j,
            energy_scope=self.energy_scope,
            batch_size=config.batch_size,
            actual_freq_mhz=self.device.current_freq_mhz(),
        )
