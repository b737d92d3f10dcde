"""The replay driver of the serving core: a config and a workload in, an Observation out.

It serves one continuous arrival stream, as a live server does (DESIGN.md, "Steady state"): a round is the next
N requests completed at the current config; what is queued when a round ends — a partly filled batch, a backlog
— passes into the next round, and a config changes at a batch boundary (between rounds). A round that is a
bounded probe serves only `max_batches` batches, and a round that falls behind — its batches take longer than
b/λ and its queue grew — ends at the next batch boundary after two batches (flagged: `keeps_up` False).
Latency = batch completion − arrival (a request inherited from
an earlier round counts its whole wait). Energy per request = device energy over the round ÷ requests (`total`
scope, idle time between batches included) or batch energy only (`active`). A round whose queue grew by a batch
or more is flagged behind (`keeps_up` False). Saturated arrivals have no stream: each round's requests all
arrive at its start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypedDict

import numpy as np

from edpilot.clock import Clock
from edpilot.engine.base import Engine, TokenSink
from edpilot.errors import ConfigError, EngineError
from edpilot.hardware.base import Device
from edpilot.levels import set_levels
from edpilot.objective import ENERGY_SCOPES, EnergyScope, Observation
from edpilot.serving.batcher import StaticBatcher
from edpilot.serving.phase import PhaseSwitch, phase_switch
from edpilot.serving.queueing import keeps_up
from edpilot.serving.traffic import Traffic, window_requests
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
    batch: Sequence[Request],
    *,
    engine: Engine,
    device: Device,
    clock: Clock,
    on_token: TokenSink | None = None,
    phase: PhaseSwitch | None = None,
) -> ServedBatch:
    """Run one batch on the engine and measure its time and energy; `on_token` gets its tokens as they come.
    With `phase`, the decode runs at its levels and the prefill levels are back at the end, inside the window."""
    with EnergyWindow(device, clock) as window:
        if phase is None:
            completions = engine.generate(batch) if on_token is None else engine.generate(batch, on_token)
        else:
            try:
                completions = engine.generate(batch, on_token, on_decode=phase.on_decode)
            finally:
                phase.end_batch()
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


STREAM_CHUNK = 512  # requests drawn from the workload at a time to extend the stream
CUT_MARGIN = 1.02  # ... or once they take 2 % longer than b/λ, whether or not the queue grew yet
CUT_AFTER_BATCHES = 2  # a round ends early, at a batch boundary, once this many batches show it falling behind


class ArrivalStream:
    """One continuous stream of requests from a workload: chunks stitched end to end, on the clock's time.

    A workload hands out chunks with arrivals relative to the chunk's first request; the next chunk starts one
    gap after the last request of the previous one (a fresh exponential gap under Poisson arrivals, 1/λ for
    uniform ones, the mean gap for a trace). Request ids count up over the whole stream.
    """

    def __init__(self, source: RequestSource, rng: np.random.Generator, *, start_s: float) -> None:
        self.source, self.rng = source, rng
        self.traffic: Traffic = source.traffic(1)
        self._pending: list[Request] = []
        self._next_start_s = start_s
        self._issued = 0

    def next_arrival_s(self) -> float:
        """Arrival time (s) of the next request not yet taken."""
        if not self._pending:
            self._extend()
        return self._pending[0].arrival_s

    def take_until(self, now_s: float) -> list[Request]:
        """Every request arriving at or before `now_s`, in order."""
        out: list[Request] = []
        while self.next_arrival_s() <= now_s:
            k = 0
            while k < len(self._pending) and self._pending[k].arrival_s <= now_s:
                k += 1
            out += self._pending[:k]
            del self._pending[:k]
        return out

    def shift(self, pause_s: float) -> None:
        """Delay every request not yet taken by `pause_s` seconds (the stream paused)."""
        self._pending = [r.at(pause_s) for r in self._pending]
        self._next_start_s += pause_s

    def _extend(self) -> None:
        chunk = self.source.requests(STREAM_CHUNK, self.rng)
        start_s = self._next_start_s
        self._pending += [replace(r.at(start_s), request_id=self._issued + i) for i, r in enumerate(chunk)]
        self._issued += len(chunk)
        t = self.traffic
        if t.arrivals == "poisson":
            gap_s = float(self.rng.exponential(1.0 / t.rate_per_s))
        elif t.arrivals == "trace" and t.gaps_s:
            gap_s = float(np.mean(t.gaps_s))
        else:
            gap_s = 1.0 / t.rate_per_s
        self._next_start_s = self._pending[-1].arrival_s + gap_s


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
    backlog: tuple[int, int] | None = None,
) -> Observation:
    """Turn served batches into an Observation (latencies, energy per request, keeps-up flag).

    `backlog` = (requests queued at the window's start, at its end): the window kept up unless its queue grew by
    a batch or more. Without it (a live window), a window keeps up when its mean batch time is at most b × the
    mean gap of its arrivals.
    """
    arrivals_s = np.array([r.arrival_s for b in batches for r in b.requests])
    ends_s = np.array([b.end_s for b in batches for _ in b.requests])
    latencies_s = ends_s - arrivals_s
    ttfts = [b.start_s + t - r.arrival_s for b in batches for r, t in zip(b.requests, b.ttfts_s) if t is not None]
    itls = [t for b in batches for t in b.itls_s if t is not None]
    n = len(latencies_s)
    service_s = np.array([b.end_s - b.start_s for b in batches])
    # latency = fill wait (arrival -> its batch's last arrival) + queue wait (-> batch start) + service
    full_s = np.array([max(r.arrival_s for r in b.requests) for b in batches for _ in b.requests])
    starts_s = np.array([b.start_s for b in batches for _ in b.requests])
    batch_energy = [b.energy_j for b in batches if b.energy_j is not None]
    energy_per_batch_j = None if len(batch_energy) < len(batches) else float(np.mean(batch_energy))
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
        keeps_up=(
            keeps_up(arrivals_s, float(service_s.mean()), batch_size)
            if backlog is None
            else backlog[1] - backlog[0] < batch_size
        ),
        actual_freq_mhz=actual_freq_mhz,
        failed_requests=sum(len(b.errors) for b in batches),
        meter_updates=window.meter_updates,
        first_error=next((e for b in batches for e in b.errors), None),
        mean_fill_wait_s=float((full_s - arrivals_s).mean()),
        mean_queue_wait_s=float((starts_s - full_s).mean()),
        mean_service_s=float((ends_s - starts_s).mean()),
        backlog_requests=None if backlog is None else backlog[1],
        **token_percentiles(ttfts, itls),
    )


class TokenPercentiles(TypedDict):
    """p50 and p95 of TTFT and inter-token latency (s), named as Observation's fields."""

    p50_ttft_s: float | None
    p95_ttft_s: float | None
    p50_itl_s: float | None
    p95_itl_s: float | None


def token_percentiles(ttfts_s: Sequence[float], itls_s: Sequence[float]) -> TokenPercentiles:
    """p50 and p95 of TTFT and inter-token latency (s), as Observation fields; None where none was measured."""

    def percentile(values: Sequence[float], q: int) -> float | None:
        return float(np.percentile(values, q)) if len(values) else None

    return TokenPercentiles(
        p50_ttft_s=percentile(ttfts_s, 50),
        p95_ttft_s=percentile(ttfts_s, 95),
        p50_itl_s=percentile(itls_s, 50),
        p95_itl_s=percentile(itls_s, 95),
    )


@dataclass
class Runner:
    """Serves one continuous arrival stream, a round at a time: pins the config, returns the round's Observation."""

    device: Device
    engine: Engine
    workload: RequestSource
    requests_per_round: int = 32
    energy_scope: EnergyScope = "total"
    max_wait_s: float | None = None
    seed: int = 0
    drop_behind: bool = True  # end a round that falls behind at the next batch boundary

    def __post_init__(self) -> None:
        if self.energy_scope not in ENERGY_SCOPES:
            raise ConfigError(f"unknown energy scope {self.energy_scope!r}; choose one of: {', '.join(ENERGY_SCOPES)}")
        if self.requests_per_round < 1:
            raise ConfigError(f"requests per round must be >= 1, got {self.requests_per_round}")
        self._rng = np.random.default_rng(self.seed)
        self._warm_batch_sizes: set[int] = set()
        self._stream: ArrivalStream | None = None
        self._batcher: StaticBatcher[Request] | None = None

    @property
    def clock(self) -> Clock:
        """The device's clock: wall time on hardware, virtual time on the simulator."""
        return self.device.clock

    @property
    def backlog_requests(self) -> int:
        """Requests queued now (arrived, not yet in a batch): what the next round inherits."""
        return 0 if self._batcher is None else len(self._batcher)

    def window_requests(self, batch_size: int) -> int:
        """Requests in one round: at least `requests_per_round` and two full batches, a multiple of b."""
        return window_requests(self.requests_per_round, batch_size)

    def measure(self, config: Config, *, max_batches: int | None = None) -> Observation:
        """Serve the next round at `config` — N requests completed, or `max_batches` batches (a probe) — and
        summarise it; the frequency switch is inside the round. The queue carries over to the next round."""
        if max_batches is not None and max_batches < 1:
            raise ConfigError(f"a round serves at least one batch, got max_batches={max_batches}")
        b = config.batch_size
        count = self.window_requests(b)
        if self.engine.needs_warmup and b not in self._warm_batch_sizes:
            self._warm_up(b)
        window = EnergyWindow(
            self.device, self.clock, update_interval_ms=self.device.capabilities.meter_update_interval_ms, align=True
        ).begin()
        assert window.start_s is not None
        batcher = self._batcher_at(b)
        saturated = self.workload.arrivals == "saturated"
        if saturated:
            for r in self.workload.requests(count, self._rng):
                batcher.offer(r.at(window.start_s), window.start_s)
        else:
            self._offer_arrivals(window.start_s)
        queued_start = len(batcher)
        set_levels(self.device, config)  # a dry run only logs the levels it would set
        phase = phase_switch(  # --phase-clocks: decode levels, set at each first decode step
            self.device, self.clock, prefill=config.device_levels(), decode=config.decode_levels()
        )
        batches: list[ServedBatch] = []
        served = 0
        cut = False
        while served < count and (max_batches is None or len(batches) < max_batches):
            now_s = self.clock.now_s()
            if not saturated:
                self._offer_arrivals(now_s)
            if self.drop_behind and not saturated and self._falling_behind(batches, b, queued_start):
                cut = True  # dropped at this batch boundary: it cannot keep up and its queue grew
                break
            batch = batcher.poll(now_s)
            if batch is None and saturated:
                batch = batcher.flush() or None
            if batch is not None:
                batches.append(run_batch(batch, engine=self.engine, device=self.device, clock=self.clock, phase=phase))
                served += len(batch)
                continue
            assert self._stream is not None
            deadline_s = batcher.next_deadline_s()
            next_s = self._stream.next_arrival_s()
            self.clock.sleep_until(next_s if deadline_s is None else min(next_s, deadline_s))
        window.end()
        if not saturated:
            assert window.end_s is not None
            self._offer_arrivals(window.end_s)
        obs = summarize(
            batches,
            window=window,
            energy_scope=self.energy_scope,
            batch_size=b,
            actual_freq_mhz=self.device.current_freq_mhz(),
            backlog=None if saturated else (queued_start, len(batcher)),  # saturated rounds have no stream
        )
        return replace(obs, keeps_up=False) if cut else obs

    def _falling_behind(self, batches: Sequence[ServedBatch], batch_size: int, queued_start: int) -> bool:
        """After `CUT_AFTER_BATCHES` batches or more: the batches so far take longer than b/λ on average and the
        queue has grown since the round began — or they take CUT_MARGIN longer, whatever the arrivals' luck."""
        if len(batches) < CUT_AFTER_BATCHES or self._stream is None or self._batcher is None:
            return False
        mean_s = sum(x.end_s - x.start_s for x in batches) / len(batches)
        rho = mean_s * self._stream.traffic.rate_per_s / batch_size
        return rho >= CUT_MARGIN or (rho >= 1.0 and len(self._batcher) > queued_start)

    def _batcher_at(self, batch_size: int) -> StaticBatcher[Request]:
        """The one batcher of the stream, set to `batch_size` (queued requests stay, in order)."""
        if self._batcher is None:
            self._batcher = StaticBatcher(batch_size, max_wait_s=self.max_wait_s)
        self._batcher.set_batch_size(batch_size)
        return self._batcher

    def _offer_arrivals(self, now_s: float) -> None:
        """Queue every request of the stream that has arrived by `now_s` (a new workload starts a new stream)."""
        if self._stream is None or self._stream.source is not self.workload:
            self._stream = ArrivalStream(self.workload, self._rng, start_s=now_s)
        assert self._batcher is not None
        for r in self._stream.take_until(now_s):
            self._batcher.offer(r, now_s)

    def _warm_up(self, batch_size: int) -> None:
        """Run one untimed batch (compiles this batch size's graph); the stream pauses meanwhile."""
        start_s = self.clock.now_s()
        self.engine.generate(self.workload.requests(batch_size, self._rng))
        self._warm_batch_sizes.add(batch_size)
        pause_s = self.clock.now_s() - start_s
        if self._batcher is not None and pause_s > 0:
            queued = self._batcher.flush()
            for r in queued:
                self._batcher.offer(r.at(pause_s), r.arrival_s + pause_s)
        if self._stream is not None and pause_s > 0:
            self._stream.shift(pause_s)
