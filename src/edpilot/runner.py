"""The replay driver of the serving core: a config and a workload in, an Observation out.

It feeds a window of requests (absolute arrival times on the device's clock) to the static batcher,
runs each batch the batcher releases on the engine, and measures the window's energy. Latency = batch
completion − arrival. Energy per request = device energy over the window ÷ requests (`total` scope, idle
time between batches included) or batch energy only (`active`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edpilot.clock import Clock
from edpilot.engine.base import Engine, TokenSink
from edpilot.errors import ConfigError, EngineError
from edpilot.hardware.base import Device
from edpilot.objective import ENERGY_SCOPES, EnergyScope, Observation
from edpilot.serving.batcher import StaticBatcher
from edpilot.serving.queueing import keeps_up
from edpilot.serving.traffic import window_requests
from edpilot.serving.window import EnergyWindow
from edpilot.space import Config
from edpilot.workload import Request, RequestSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedBatch:
    """One batch as it happened: its requests, start/end times (s) and device energy during it (J)."""

    requests: tuple[Request, ...]
    start_s: float
    end_s: float
    energy_j: float | None
    ttfts_s: tuple[float | None, ...]
    errors: tuple[str, ...] = ()
    itls_s: tuple[float | None, ...] = ()


def run_batch(
    batch: Sequence[Request], *, engine: Engine, device: Device, clock: Clock, on_token: TokenSink | None = None
) -> ServedBatch:
    """Run one batch on the engine and measure its time and energy; `on_token` gets its tokens as they come."""
    with EnergyWindow(device, clock) as window:
        completions = engine.generate(batch) if on_token is None else engine.generate(batch, on_token)
    if len(completions) != len(batch):
        raise EngineError(f"engine returned {len(completions)} completions for a batch of {len(batch)}")
    errors = tuple(c.error for c in completions if c.error)
    for error in errors[:1]:
        log.warning("%d of %d requests failed, e.g.: %s", len(errors), len(batch), error)
    assert window.start_s is not None and window.end_s is not None
    return ServedBatch(
        tuple(batch),
        window.start_s,
        window.end_s,
        window.energy_j,
        tuple(c.ttft_s for c in completions),
        errors,
        tuple(c.itl_s for c in completions),
    )


def serve_window(
    requests: Sequence[Request],
    *,
    batcher: StaticBatcher[Request],
    engine: Engine,
    device: Device,
    clock: Clock,
) -> list[ServedBatch]:
    """Serve `requests` (absolute arrival times, ascending) through `batcher`; the last partial batch is flushed."""
    batches: list[ServedBatch] = []
    i, n = 0, len(requests)
    while True:
        now_s = clock.now_s()
        while i < n and requests[i].arrival_s <= now_s:
            batcher.offer(requests[i], now_s)
            i += 1
        batch = batcher.poll(now_s)
        if batch is None and i == n:
            batch = batcher.flush() or None
        if batch is not None:
            batches.append(run_batch(batch, engine=engine, device=device, clock=clock))
            continue
        if i == n:
            return batches
        deadline_s = batcher.next_deadline_s()
        clock.sleep_until(requests[i].arrival_s if deadline_s is None else min(requests[i].arrival_s, deadline_s))


def summarize(
    batches: Sequence[ServedBatch],
    *,
    window: EnergyWindow,
    energy_scope: EnergyScope,
    batch_size: int,
    actual_freq_mhz: float | None = None,
) -> Observation:
    """Turn served batches into an Observation (latencies, energy per request, keeps-up flag)."""
    arrivals_s = np.array([r.arrival_s for b in batches for r in b.requests])
    ends_s = np.array([b.end_s for b in batches for _ in b.requests])
    latencies_s = ends_s - arrivals_s
    ttfts = [b.start_s + t - r.arrival_s for b in batches for r, t in zip(b.requests, b.ttfts_s) if t is not None]
    itls = [t for b in batches for t in b.itls_s if t is not None]
    n = len(latencies_s)
    service_s = np.array([b.end_s - b.start_s for b in batches])
    batch_energy = [b.energy_j for b in batches]
    energy_per_batch_j = None if None in batch_energy else float(np.mean(batch_energy))
    window_s = window.duration_s
    if energy_scope == "total":
        energy_j = window.energy_j
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
        power_w=None if window.energy_j is None else window.energy_j / window_s,
        mean_batch_s=float(service_s.mean()),
        energy_per_batch_j=energy_per_batch_j,
        window_s=float(window_s),
        keeps_up=keeps_up(arrivals_s, float(service_s.mean()), batch_size),
        actual_freq_mhz=actual_freq_mhz,
        failed_requests=sum(len(b.errors) for b in batches),
        meter_updates=window.meter_updates,
        first_error=next((e for b in batches for e in b.errors), None),
        **token_percentiles(ttfts, itls),
    )


def token_percentiles(ttfts_s: Sequence[float], itls_s: Sequence[float]) -> dict[str, float | None]:
    """p50 and p95 of TTFT and inter-token latency (s), as Observation fields; None where none was measured."""
    out: dict[str, float | None] = {}
    for name, values in (("ttft", ttfts_s), ("itl", itls_s)):
        for q in (50, 95):
            out[f"p{q}_{name}_s"] = float(np.percentile(values, q)) if len(values) else None
    return out


@dataclass
class Runner:
    """Measures one config: pins the frequency, serves a window of requests, returns the Observation."""

    device: Device
    engine: Engine
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

    @property
    def clock(self) -> Clock:
        """The device's clock: wall time on hardware, virtual time on the simulator."""
        return self.device.clock

    def window_requests(self, batch_size: int) -> int:
        """Requests in one window: at least `requests_per_round` and two full batches, a multiple of b."""
        return window_requests(self.requests_per_round, batch_size)

    def measure(self, config: Config) -> Observation:
        """Serve one window at `config` and summarise it; the frequency switch is inside the window."""
        count = self.window_requests(config.batch_size)
        requests = self.workload.requests(count, self._rng)
        if self.engine.needs_warmup and config.batch_size not in self._warm_batch_sizes:
            self.engine.generate(requests[: config.batch_size])  # untimed: compiles this batch size's graph
            self._warm_batch_sizes.add(config.batch_size)
        window = EnergyWindow(
            self.device, self.clock, update_interval_ms=self.device.capabilities.meter_update_interval_ms
        ).begin()
        requests = [r.at(window.start_s) for r in requests]
        caps = self.device.capabilities
        if config.freq_mhz is not None and (caps.can_set_clocks or caps.dry_run):
            self.device.set_freq_mhz(config.freq_mhz)  # a dry run only logs the level it would set
        batcher: StaticBatcher[Request] = StaticBatcher(config.batch_size, max_wait_s=self.max_wait_s)
        batches = serve_window(requests, batcher=batcher, engine=self.engine, device=self.device, clock=self.clock)
        window.end()
        return summarize(
            batches,
            window=window,
            energy_scope=self.energy_scope,
            batch_size=config.batch_size,
            actual_freq_mhz=self.device.current_freq_mhz(),
        )
