"""The replay driver for continuous batching: one arrival stream, served step by step, measured in rounds.

Requests arrive on one continuous stream (the workload's windows laid end to end) and wait, FIFO, for one of
`slots` sequences (the config's `batch_size`); a request joins at the next decode step when a slot is free
(`ContinuousScheduler`) and leaves at the step that makes its last token. A round is the next
`requests_per_round` requests completed at the current config; the queue and the running sequences carry over
into the next round (steady state), and a new config applies from the next step on. Latency = the end of the
request's last step − its arrival; TTFT = its first token − its arrival. Energy per request = device energy over
the round ÷ requests completed (`total`), or the energy of the round's steps ÷ requests (`active`).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from edpilot.clock import Clock
from edpilot.engine.base import Completion, SequenceEngine
from edpilot.errors import ConfigError
from edpilot.hardware.base import Device
from edpilot.levels import set_levels
from edpilot.objective import ENERGY_SCOPES, EnergyScope, Observation
from edpilot.runner import token_percentiles
from edpilot.serving.continuous import ContinuousScheduler
from edpilot.serving.window import EnergyWindow
from edpilot.space import Config
from edpilot.workload import Request, RequestSource


@dataclass(frozen=True)
class ServedRequest:
    """One request as it was served: its arrival, the step it joined at and its end (s), and its answer."""

    request: Request
    joined_s: float
    end_s: float
    completion: Completion

    @property
    def latency_s(self) -> float:
        """Arrival to its last token (s)."""
        return self.end_s - self.request.arrival_s

    @property
    def ttft_s(self) -> float | None:
        """Arrival to its first token (s); None when the engine did not say."""
        ttft = self.completion.ttft_s
        return None if ttft is None else self.joined_s + ttft - self.request.arrival_s


@dataclass(frozen=True)
class ServedStep:
    """One decode step: when it ran (s), the device energy during it (J; None: no reading), sequences in it, and a
    sequence's mean tokens in the KV cache over them (its prompt and the tokens it made; None: not known)."""

    start_s: float
    end_s: float
    energy_j: float | None
    sequences: int
    context_tokens: float | None = None


def summarize_sequences(
    served: Sequence[ServedRequest],
    steps: Sequence[ServedStep],
    *,
    window: EnergyWindow,
    energy_scope: EnergyScope,
    keeps_up: bool,
    actual_freq_mhz: float | None = None,
) -> Observation:
    """A round of continuous batching as an Observation; `mean_batch_s` and `energy_per_batch_j` are per step."""
    if energy_scope not in ENERGY_SCOPES:
        raise ConfigError(f"unknown energy scope {energy_scope!r}; choose one of: {', '.join(ENERGY_SCOPES)}")
    latencies_s = np.array([s.latency_s for s in served])
    step_energy = [s.energy_j for s in steps if s.energy_j is not None]
    energy_per_step_j = None if not steps or len(step_energy) < len(steps) else float(np.mean(step_energy))
    if energy_scope == "total":
        energy_j = window.energy_j
    else:
        energy_j = None if energy_per_step_j is None else float(np.sum(step_energy))
    ttfts = [t for t in (s.ttft_s for s in served) if t is not None]
    itls = [t for t in (s.completion.itl_s for s in served) if t is not None]
    errors = [s.completion.error for s in served if s.completion.error]
    n = len(served)
    contexts = [s.context_tokens for s in steps if s.context_tokens is not None]  # none when an engine cannot say
    return Observation(
        requests=n,
        energy_per_request_j=None if energy_j is None else energy_j / n,
        mean_latency_s=float(latencies_s.mean()),
        p95_latency_s=float(np.percentile(latencies_s, 95)),
        mean_ttft_s=float(np.mean(ttfts)) if ttfts else None,
        power_w=None if window.energy_j is None else window.energy_j / window.duration_s,
        mean_batch_s=float(np.mean([s.end_s - s.start_s for s in steps])) if steps else 0.0,
        energy_per_batch_j=energy_per_step_j,
        window_s=float(window.duration_s),
        keeps_up=keeps_up,
        actual_freq_mhz=actual_freq_mhz,
        failed_requests=len(errors),
        meter_updates=window.meter_updates,
        first_error=errors[0] if errors else None,
        **token_percentiles(ttfts, itls),
        steps=len(steps),
        peak_sequences=max((s.sequences for s in steps), default=0),
        mean_sequences=float(np.mean([s.sequences for s in steps])) if steps else None,
        mean_context_tokens=float(np.mean(contexts)) if steps and len(contexts) == len(steps) else None,
    )


WARMUP_PROMPT = "Warm up: say what an edge GPU spends its energy on, in one long and careful answer."


def warm_up(engine: SequenceEngine, slots: int, prompt: str = WARMUP_PROMPT) -> int:
    """Untimed steps before any is measured, for an engine that `needs_warmup`: `slots` sequences join at once
    and leave one per step (the i-th after i + 1 tokens), so every occupancy from `slots` down to 1 runs once.
    Returns the steps run."""
    for i in range(slots):
        engine.add(Request(-1 - i, 0.0, prompt, len(prompt.split()), i + 2))
    steps = 0
    while engine.running():
        engine.step()
        steps += 1
    return steps


class ContinuousRunner:
    """Measures configs (clock, concurrent sequences) on one arrival stream that carries over between rounds."""

    def __init__(
        self,
        *,
        device: Device,
        engine: object,
        workload: RequestSource,
        requests_per_round: int = 32,
        energy_scope: EnergyScope = "total",
        seed: int = 0,
    ) -> None:
        if not isinstance(engine, SequenceEngine):
            raise ConfigError(
                f"the {getattr(engine, 'name', '?')} engine has no step-level interface; "
                "--batching continuous needs the sim, hf, llamacpp or openai engine"
            )
        if energy_scope not in ENERGY_SCOPES:
            raise ConfigError(f"unknown energy scope {energy_scope!r}; choose one of: {', '.join(ENERGY_SCOPES)}")
        if requests_per_round < 1:
            raise ConfigError(f"requests per round must be >= 1, got {requests_per_round}")
        self.device, self.engine, self.workload = device, engine, workload
        self.requests_per_round, self.energy_scope = requests_per_round, energy_scope
        self._rng = np.random.default_rng(seed)
        self._ids = itertools.count()
        self._upcoming: deque[Request] = deque()
        self._stream_end_s: float | None = None
        self._scheduler: ContinuousScheduler[Request] | None = None
        self._joined_s: dict[int, tuple[Request, float]] = {}
        self._tokens: dict[int, int] = {}  # tokens made so far per running request
        self.round_steps: list[ServedStep] = []  # the last round's steps (benchmarks read the step curve off them)

    @property
    def clock(self) -> Clock:
        """The device's clock."""
        return self.device.clock

    def measure(self, config: Config, *, max_batches: int | None = None) -> Observation:
        """Serve at `config` until `requests_per_round` more requests complete (a bounded probe, `max_batches`:
        until that many slots' worth complete); summarise that round."""
        caps = self.device.capabilities
        if self._scheduler is None and self.engine.needs_warmup:
            warm_up(self.engine, config.batch_size)
        window = EnergyWindow(self.device, self.clock, update_interval_ms=caps.meter_update_interval_ms).begin()
        set_levels(self.device, config)
        if self._scheduler is None:
            self._scheduler = ContinuousScheduler(config.batch_size)
        scheduler = self._scheduler
        scheduler.set_slots(config.batch_size)
        backlog_start = len(scheduler)
        served: list[ServedRequest] = []
        steps: list[ServedStep] = []
        wanted = (
            self.requests_per_round
            if max_batches is None
            else min(self.requests_per_round, max_batches * config.batch_size)
        )
        while len(served) < wanted:
            now_s = self.clock.now_s()
            while self._next_arrival_s() <= now_s:
                scheduler.offer(self._upcoming.popleft(), now_s)
            for request in scheduler.poll(now_s):
                self.engine.add(request)
                self._joined_s[request.request_id] = (request, now_s)
                self._tokens[request.request_id] = 0
            if self.engine.running() == 0:
                self.clock.sleep_until(self._next_arrival_s())
                continue
            context = float(np.mean([r.prompt_tokens + self._tokens[rid] for rid, (r, _) in self._joined_s.items()]))
            with EnergyWindow(self.device, self.clock) as step_window:
                step = self.engine.step()
            assert step_window.start_s is not None and step_window.end_s is not None
            steps.append(
                ServedStep(step_window.start_s, step_window.end_s, step_window.energy_j, scheduler.running, context)
            )
            for rid in self._tokens:
                self._tokens[rid] += 1
            for rid, completion in step.finished.items():
                request, joined_s = self._joined_s.pop(rid)
                del self._tokens[rid]
                served.append(ServedRequest(request, joined_s, step_window.end_s, completion))
            scheduler.release(len(step.finished))
        window.end()
        self.round_steps = steps
        return summarize_sequences(
            served,
            steps,
            window=window,
            energy_scope=self.energy_scope,
            keeps_up=len(scheduler) <= backlog_start + scheduler.slots,
            actual_freq_mhz=self.device.current_freq_mhz(),
        )

    def _next_arrival_s(self) -> float:
        """The next arrival on the stream (s), drawing the workload's next window when the stream runs dry.

        Windows are laid end to end: the next one's first arrival (at its 0 s) comes one mean gap after the last."""
        if not self._upcoming:
            traffic = self.workload.traffic(self.requests_per_round)
            gap_s = 0.0 if traffic.arrivals == "saturated" else 1.0 / traffic.rate_per_s
            start_s = self.clock.now_s() if self._stream_end_s is None else self._stream_end_s + gap_s
            batch = self.workload.requests(max(self.requests_per_round, 32), self._rng)
            for r in batch:
                self._upcoming.append(replace(r.at(start_s), request_id=next(self._ids)))
            self._stream_end_s = self._upcoming[-1].arrival_s
        return self._upcoming[0].arrival_s
