"""The tuning session: the baseline first, then the strategy's proposals, every round logged.

`tune` (replayed traffic) and `serve` (live traffic) both drive it: ask `next_config()`, serve a window
there, hand the Observation to `record()`. Round 0 measures the baseline (what every gain is quoted
against, and the normaliser of the `weighted` objective); the strategy is built once the baseline is
known and is told about it too. A round whose every request failed is recorded as failed and never chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from edpilot.continuous_runner import ContinuousRunner
from edpilot.errors import ConfigError, EngineError
from edpilot.objective import BoundObjective, EnergyScope, Objective, Observation
from edpilot.runlog import RoundRecord, RunLog, Summary
from edpilot.runner import Runner
from edpilot.search import SearchContext, Strategy, make_strategy
from edpilot.serving.traffic import Traffic
from edpilot.space import Config, ConfigSpace
from edpilot.stats import ConfigStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionSettings:
    """How a session searches: grid, objective, strategy and its limits."""

    space: ConfigSpace
    objective: Objective
    strategy: str
    baseline: Config
    energy_scope: EnergyScope = "total"
    idle_power_w: float | None = None
    seed: int = 0
    slo_p95_s: float | None = None
    power_cap_w: float | None = None
    slo_ttft_p95_s: float | None = None


@dataclass(frozen=True)
class TuneResult:
    """What a session found: the chosen config against the baseline, and every round."""

    best: ConfigStats
    baseline: ConfigStats
    rounds: list[RoundRecord]
    summary: Summary


class TuningSession:
    """Baseline, next, record, best: the tuning loop without the serving."""

    def __init__(
        self,
        settings: SessionSettings,
        traffic: Traffic,
        *,
        run_log: RunLog | None = None,
        on_round: Callable[[RoundRecord], None] | None = None,
    ) -> None:
        self.settings = settings
        self.space = settings.space
        self.traffic = traffic
        self.run_log = run_log or RunLog(None)
        self.on_round = on_round
        self.baseline = self.space.validate(settings.baseline)
        self.rounds: list[RoundRecord] = []
        self.stats: dict[Config, ConfigStats] = {}
        self.strategy: Strategy | None = None
        self.objective: BoundObjective | None = None

    def next_config(self) -> Config:
        """The config to serve next: the baseline until it is measured, then the strategy's proposal."""
        if self.strategy is None:
            return self.baseline
        return self.space.validate(self.strategy.propose())

    def record(self, config: Config, obs: Observation, *, note: str | None = None) -> RoundRecord:
        """Record a window served at `config`: cost it, tell the strategy, log it."""
        if self.strategy is None:
            if config != self.baseline:
                raise ConfigError(f"the first round must measure the baseline {self.baseline}, not {config}")
            if obs.failed:
                raise EngineError(f"the baseline round failed: all {obs.requests} requests failed ({obs.first_error})")
            self.objective = self.settings.objective.bind(obs)
            self.strategy = make_strategy(self.settings.strategy, self._context())
        cost = self.strategy.observe(config, obs)
        self.stats.setdefault(config, ConfigStats(config)).add(obs, cost)
        role = "baseline" if not self.rounds else "search"
        record = RoundRecord(len(self.rounds), role, config, obs, cost, note)
        if obs.failed:
            log.warning("round %d at %s failed: %s", record.round, config, obs.first_error)
        self.rounds.append(record)
        self.run_log.write(record)
        if self.on_round is not None:
            self.on_round(record)
        return record

    def set_traffic(self, traffic: Traffic) -> None:
        """The traffic changed: the strategy re-plans at once."""
        self.traffic = traffic
        if self.strategy is not None:
            self.strategy.set_traffic(traffic)

    def best(self) -> Config:
        """The strategy's current choice (the baseline before anything is known)."""
        return self.baseline if self.strategy is None else self.strategy.best()

    def finish(self) -> TuneResult:
        """Close the session: the summary record; EngineError when every search round failed."""
        searched = self.rounds[1:]
        if searched and all(r.obs.failed for r in searched):
            raise EngineError(f"every search round failed: {searched[-1].obs.first_error}")
        best = self.best()
        best_stats = self._stats_of(best)
        base_stats = self._stats_of(self.baseline)
        summary = Summary(
            objective=str(self.settings.objective),
            best=best_stats.to_dict(),
            baseline=base_stats.to_dict(),
            rounds=len(searched),
            failed_rounds=sum(r.obs.failed for r in self.rounds),
        )
        self.run_log.write(summary)
        return TuneResult(best=best_stats, baseline=base_stats, rounds=list(self.rounds), summary=summary)

    def _stats_of(self, config: Config) -> ConfigStats:
        return self.stats.get(config) or ConfigStats(config)

    def _context(self) -> SearchContext:
        s = self.settings
        assert self.objective is not None
        return SearchContext(
            space=self.space,
            objective=self.objective,
            baseline=self.baseline,
            traffic=self.traffic,
            energy_scope=s.energy_scope,
            idle_power_w=s.idle_power_w,
            seed=s.seed,
            slo_p95_s=s.slo_p95_s,
            power_cap_w=s.power_cap_w,
            slo_ttft_p95_s=s.slo_ttft_p95_s,
        )


def tune(*, runner: Runner | ContinuousRunner, session: TuningSession, budget: int) -> TuneResult:
    """Drive `session` with replayed traffic: the baseline round, then `budget` search rounds."""
    if budget < 1:
        raise ConfigError(f"--budget must be >= 1 round, got {budget}")
    if session.settings.objective.needs_energy and not runner.device.capabilities.has_meter:
        raise ConfigError(
            f"objective {session.settings.objective} needs an energy meter and device {runner.device.name} has none; "
            "use --objective latency"
        )
    for _ in range(budget + 1):
        config = session.next_config()
        session.record(config, runner.measure(config))
    return session.finish()
