"""The worker thread's side of the server: run batches, measure rounds, move to the session's next config.

A round is a window of served requests at one config (at least `Traffic.window_requests(b)` of them),
measured with an `EnergyWindow` and turned into an Observation by `runner.summarize`, exactly as `tune`
does with replayed traffic; the same `TuningSession` records it, so the run log is the same format.
Online, the session proposes configs for `budget` rounds, then the server holds the session's best
config (still measuring it); a traffic drift re-plans at once and opens another `budget` rounds. Before each
round the online control (server.control) checks the next config against the estimated rate: a config
measured behind is left at once, and when every config falls behind that is said once (log, /healthz,
the `edpilot_overloaded` metric) and the highest-throughput config served. Whether the session's choice
meets the constraints is logged when it changes and exposed the same way (`edpilot_constraint_met`).
With continuous batching (`continuous=True`) the worker runs decode steps (`step`) instead of batches and a round
closes once enough requests finished (`finished`); it is summarised by `summarize_sequences`, as `tune` does.
A round whose run-log line cannot be written (a full disk) is still served, costed and told to the session; the
first such failure is logged, later ones only counted and said once more at shutdown. Everything here runs on one
worker thread; `offer_traffic` is the only entry from the event loop, and `status` is read from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from edpilot.backends import Backends
from edpilot.continuous_runner import ServedRequest, ServedStep, summarize_sequences
from edpilot.engine.base import Completion, DecodeHook, SequenceEngine, Step, TokenSink
from edpilot.errors import EdpilotError
from edpilot.levels import set_levels
from edpilot.objective import EnergyScope
from edpilot.runner import ServedBatch, run_batch, summarize
from edpilot.server.control import control
from edpilot.server.estimator import TrafficChange
from edpilot.server.metrics import ServerMetrics
from edpilot.serving.phase import PhaseSwitch, phase_switch
from edpilot.serving.window import EnergyWindow
from edpilot.space import Config
from edpilot.tuner import TuneResult, TuningSession
from edpilot.workload import Request

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    """What a batch gave back: one completion and one energy share (J, None: no meter) per request."""

    completions: list[Completion]
    energy_j: list[float | None]
    batch_size: int


class _Recorder:
    """The engine, keeping the completions of its last batch (run_batch measures, the server needs the text)."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.name = engine.name  # type: ignore[attr-defined]
        self.needs_warmup = False
        self.last: list[Completion] = []

    def generate(
        self, batch: Sequence[Request], on_token: TokenSink | None = None, *, on_decode: DecodeHook | None = None
    ) -> list[Completion]:
        if on_decode is not None:
            self.last = self.engine.generate(batch, on_token, on_decode=on_decode)  # type: ignore[attr-defined]
        else:
            self.last = self.engine.generate(batch, on_token) if on_token else self.engine.generate(batch)  # type: ignore[attr-defined]
        return self.last


class ServingDriver:
    """Runs batches at the session's current config and records a round whenever a window is complete."""

    def __init__(
        self,
        backends: Backends,
        session: TuningSession,
        *,
        metrics: ServerMetrics,
        online: bool,
        budget: int,
        energy_scope: EnergyScope,
        continuous: bool = False,
    ) -> None:
        self.device, self.clock, self.session = backends.device, backends.clock, session
        self.continuous = continuous
        self._steps: list[ServedStep] = []
        self._served: list[ServedRequest] = []
        self._backlog_start = 0
        self.metrics, self.online, self.budget, self.energy_scope = metrics, online, budget, energy_scope
        self._engine = _Recorder(backends.engine)
        self._warm_batch_sizes: set[int] = set()
        self._search_until = budget
        self._lock = threading.Lock()
        self._pending: list[TrafficChange] = []
        self._batches: list[ServedBatch] = []
        self._phase: PhaseSwitch | None = None  # the decode-level switch of a --phase-clocks config
        self._window: EnergyWindow | None = None
        self._cycle: EnergyWindow | None = None  # open from the last step's end while the step loop goes on
        self._note: str | None = None
        self.overload: str | None = None  # why every config falls behind, while it does
        self.constraints_met: dict[str, bool] = {}
        self._moved: tuple[Config, Config] | None = None  # the last move off a config behind, said once
        self._round_batches: int | None = None  # a bounded probe's batches (Strategy.round_batches)
        self._unlogged_rounds = 0  # rounds recorded whose run-log line could not be written
        self.config = session.next_config()

    @property
    def status(self) -> dict[str, object]:
        """What /healthz adds: whether every config falls behind (and why), and the constraints' state."""
        return {
            "overloaded": self.overload is not None,
            "overload": self.overload,
            "constraints_met": self.constraints_met,
        }

    def start(self) -> Config:
        """Open the first round at the session's first config (the baseline); returns it."""
        self._open_round(self.config)
        return self.config

    def offer_traffic(self, change: TrafficChange) -> None:
        """A new traffic estimate from the event loop; applied at the next batch boundary."""
        with self._lock:
            self._pending.append(change)

    def serve(self, requests: list[Request], on_token: TokenSink | None = None) -> BatchResult:
        """Run one batch at the current config, streaming its tokens; close the round when its window is full."""
        self._apply_traffic()
        try:
            if self._engine.engine.needs_warmup and len(requests) not in self._warm_batch_sizes:  # type: ignore[attr-defined]
                log.info(
                    "first batch of %d: one untimed run first (compiles or allocates for this size)", len(requests)
                )
                self._engine.generate(requests)
                self._warm_batch_sizes.add(len(requests))
            served = run_batch(
                requests,
                engine=self._engine,  # type: ignore[arg-type]
                device=self.device,
                clock=self.clock,
                on_token=on_token,
                phase=self._phase,
            )
            completions = list(self._engine.last)
        except Exception as exc:  # an engine failure is the batch's answer, never the server's end
            log.error("batch of %d failed: %s", len(requests), exc)
            error = f"{type(exc).__name__}: {exc}"
            return BatchResult(
                [Completion("", 0, error=error)] * len(requests), [None] * len(requests), self.config.batch_size
            )
        share = None if served.energy_j is None else served.energy_j / len(requests)
        self.metrics.batches.inc()
        if share is not None:
            self.metrics.energy_j.inc(served.energy_j)  # type: ignore[arg-type]
        self._batches.append(served)
        probe_done = self._round_batches is not None and len(self._batches) >= self._round_batches
        if probe_done or sum(len(b.requests) for b in self._batches) >= self.session.traffic.window_requests(
            self.config.batch_size
        ):
            self._close_round()
            self._next_round()
        return BatchResult(completions, [share] * len(requests), self.config.batch_size)

    def step(self, engine: SequenceEngine, running: int) -> tuple[Step, ServedStep]:
        """One decode step of `running` sequences at the current config (continuous batching), measured.

        A step is measured from the end of the one before while the loop went straight on (`pause` says when
        it waited for work instead): the host's work between steps (admitting, relaying text, and the event
        loop holding the interpreter) is part of what each step costs in time and energy, so capacity and
        the forecast see the rate the server really steps at, not the device's time alone."""
        self._apply_traffic()
        window, self._cycle = self._cycle or EnergyWindow(self.device, self.clock).begin(), None
        step = engine.step()
        window.end()
        self._cycle = EnergyWindow(self.device, self.clock).begin()
        assert window.start_s is not None and window.end_s is not None
        served = ServedStep(window.start_s, window.end_s, window.energy_j, running)
        self._steps.append(served)
        if window.energy_j is not None:
            self.metrics.energy_j.inc(window.energy_j)
        return step, served

    def pause(self) -> None:
        """The step loop waits for work: the time until the next step is idle, no step's cost."""
        self._cycle = None

    def finished(self, served: list[ServedRequest], *, backlog: int) -> Config:
        """Requests that ended at the last step; closes the round when it is full. Returns the config to serve at."""
        self._served += served
        if len(self._served) >= self.session.traffic.requests_per_round:
            self._close_round(backlog=backlog)
            self._next_round()
            self._backlog_start = backlog
        return self.config

    def finish(self) -> TuneResult | None:
        """End of service: the summary record when a round was recorded (a partial round is not)."""
        unrecorded = sum(len(b.requests) for b in self._batches) + len(self._served)
        if unrecorded:
            log.info("shutdown: %d requests of an unfinished round are not recorded", unrecorded)
        if self._unlogged_rounds:
            log.error("%d round(s) are missing from the run log: it could not be written", self._unlogged_rounds)
        if not self.session.rounds:
            return None
        try:
            return self.session.finish()
        except EdpilotError as exc:
            log.error("no summary: %s", exc)
            return None

    def _apply_traffic(self) -> None:
        with self._lock:
            changes, self._pending = self._pending, []
        for change in changes:
            self.session.set_traffic(change.traffic)
            self.metrics.arrival_rate.set(change.traffic.rate_per_s)
            if change.kind != "drift":
                log.info("traffic: %s", change.reason)
                continue
            log.warning("re-planning: %s", change.reason)
            self.metrics.retunes.inc()
            if self.online:
                self._search_until = len(self.session.rounds) - 1 + self.budget
                if (self._batches or self._served) and self.session.strategy is not None:
                    self._close_round(cut="cut short by a traffic drift")
                    self._next_round()
            self._note = f"traffic drift: {change.reason}"

    def _close_round(self, *, cut: str | None = None, backlog: int | None = None) -> None:
        window, batches = self._window, self._batches
        assert window is not None
        window.end()
        self._batches = []
        if self.continuous:
            served, steps, self._served, self._steps = self._served, self._steps, [], []
            obs = summarize_sequences(
                served,
                steps,
                window=window,
                energy_scope=self.energy_scope,
                keeps_up=backlog is None or backlog <= self._backlog_start + self.config.batch_size,
                actual_freq_mhz=self.device.current_freq_mhz(),
            )
        else:
            obs = summarize(
                batches,
                window=window,
                energy_scope=self.energy_scope,
                batch_size=self.config.batch_size,
                actual_freq_mhz=self.device.current_freq_mhz(),
            )
        note = "; ".join(n for n in (self._note, cut) if n) or None
        self._note = None
        recorded = len(self.session.rounds)
        try:
            record = self.session.record(self.config, obs, note=note)
        except EdpilotError as exc:
            if len(self.session.rounds) == recorded:  # e.g. a failed baseline round: measure it again
                log.error("round at %s not recorded: %s", self.config, exc)
                return
            record = self.session.rounds[-1]  # recorded; only its run-log line failed
            self._unlogged_rounds += 1
            if self._unlogged_rounds == 1:
                log.error("%s; serving goes on, and later rounds the run log cannot take are counted, not logged", exc)
        self.metrics.rounds.inc()
        if obs.edp is not None:
            self.metrics.edp.set(obs.edp)
        if obs.energy_per_request_j is not None:
            self.metrics.energy_per_request_j.set(obs.energy_per_request_j)
        cost = "failed" if record.cost is None else f"cost {record.cost:.4g}"
        log.info("round %d at %s: %d requests, %s", record.round, self.config, obs.requests, cost)

    def _next_round(self) -> None:
        if not self.online or self.session.strategy is None or len(self.session.rounds) - 1 < self._search_until:
            config = self.session.next_config()
        else:
            config = self.session.best()
            self._note = self._note or "hold: the session's best config"
        if self.online and self.session.strategy is not None:
            config = self._control(config)
        self._say_constraints()
        if config != self.config:
            log.info("serving at %s (was %s)", config, self.config)
        self._open_round(config)

    def _control(self, proposal: Config) -> Config:
        traffic = self.session.traffic
        rate = None if traffic.arrivals == "saturated" else traffic.rate_per_s
        decision = control(proposal, stats=self.session.stats, space=self.session.space, rate_per_s=rate)
        if decision.overloaded and self.overload is None:
            log.warning("overloaded: %s", decision.note)
        elif not decision.overloaded and self.overload is not None:
            log.info("no longer overloaded: the arrival rate is %s req/s", "unknown" if rate is None else f"{rate:.3g}")
        elif decision.note and not decision.overloaded and (proposal, decision.config) != self._moved:
            log.warning("behind: %s", decision.note)
        self._moved = (proposal, decision.config) if decision.note else None
        self.overload = decision.note if decision.overloaded else None
        self.metrics.overloaded.set(1 if decision.overloaded else 0)
        if decision.note and not decision.overloaded:
            self._note = "; ".join(n for n in (self._note, decision.note) if n)
        return decision.config

    def _say_constraints(self) -> None:
        if self.session.strategy is None or not self.session.settings.constraints.limits:
            return
        choice = self.session.choice()
        for name, met in choice.constraints_met.items():
            self.metrics.constraint_met.labels(name).set(1 if met else 0)
        if choice.constraints_met != self.constraints_met:
            for line in choice.warnings:
                log.warning("%s", line)
            unmet = [name for name, met in choice.constraints_met.items() if not met]
            if not unmet:
                log.info("constraints met at %s", choice.config)
        self.constraints_met = choice.constraints_met

    def _open_round(self, config: Config) -> None:
        caps = self.device.capabilities
        self._window = EnergyWindow(self.device, self.clock, update_interval_ms=caps.meter_update_interval_ms).begin()
        if config.device_levels() != self.config.device_levels() or not self.session.rounds:
            set_levels(self.device, config)
        self._phase = phase_switch(  # --phase-clocks: decode levels, set at each first decode step
            self.device, self.clock, prefill=config.device_levels(), decode=config.decode_levels()
        )
        self.config = config
        self._round_batches = self.session.round_batches(config)
        if self._round_batches is not None:
            self._note = self._note or f"probe: {self._round_batches} batch(es)"
        self.metrics.batch_size.set(config.batch_size)
        if config.freq_mhz is not None:
            self.metrics.freq_mhz.set(config.freq_mhz)
