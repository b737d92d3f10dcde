"""The tuning session: the baseline first, then the strategy's proposals, every round logged.

`tune` (replayed traffic) and `serve` (live traffic) both drive it: ask `next_config()`, serve a window
there, hand the Observation to `record()`. Round 0 measures the baseline (what every gain is quoted
against, and the normaliser of the `weighted` objective); the strategy is built once the baseline is
known and is handed the baseline round as such (`Strategy.observe_baseline`), with the budget in its context.
A round whose every request failed is recorded as failed and never chosen. The session has the last word on
the choice (edpilot.choice): a constraint no measured config meets is said, and the config nearest to
meeting it chosen; a choice measured worse than the baseline gives way to the baseline, and that is said.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from edpilot.atomic import uninterrupted
from edpilot.attribution import attribute_stats
from edpilot.choice import Choice, Constraints, choose
from edpilot.continuous_runner import ContinuousRunner
from edpilot.errors import ConfigError, EngineError
from edpilot.hardware.guard import raise_if_signalled
from edpilot.objective import BoundObjective, EnergyScope, Objective, Observation
from edpilot.runlog import RoundRecord, RunLog, Summary
from edpilot.runner import Runner
from edpilot.search import SearchContext, Strategy, make_strategy
from edpilot.search.prior import HardwarePrior
from edpilot.serving.traffic import Traffic
from edpilot.space import Config, ConfigSpace
from edpilot.stats import ConfigStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionSettings:
    """How a session searches: grid, objective, strategy, limits (`budget`: search rounds, per phase in serve)."""

    space: ConfigSpace
    objective: Objective
    strategy: str
    baseline: Config
    energy_scope: EnergyScope = "total"
    idle_power_w: float | None = None
    seed: int = 0
    slo_p95_s: float | None = None
    power_cap_w: float | None = None
    budget: int | None = None
    slo_ttft_p95_s: float | None = None
    prior: HardwarePrior | None = None  # another board's run of the same model (--prior), checked against this run
    batching: str = "static"

    @property
    def constraints(self) -> Constraints:
        """The p95 latency and power limits."""
        return Constraints(slo_p95_s=self.slo_p95_s, power_cap_w=self.power_cap_w)


@dataclass(frozen=True)
class TuneResult:
    """What a session found: the chosen config against the baseline, every round, and the limits it ran under."""

    best: ConfigStats
    baseline: ConfigStats
    rounds: list[RoundRecord]
    summary: Summary
    limits: dict[str, float] = field(default_factory=dict)


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
        self.governor: ConfigStats | None = None  # issue 21: the stock-governor round, if measured

    def next_config(self) -> Config:
        """The config to serve next: the baseline until it is measured, then the strategy's proposal."""
        if self.strategy is None:
            return self.baseline
        return self.space.validate(self.strategy.propose())

    def round_batches(self, config: Config) -> int | None:
        """Batches to serve at `config` this round: None for a full round, a small number for a bounded probe."""
        return None if self.strategy is None else self.strategy.round_batches(config)

    def record(self, config: Config, obs: Observation, *, note: str | None = None) -> RoundRecord:
        """Record a window served at `config`: cost it, tell the strategy, log it."""
        if self.strategy is None:
            if config != self.baseline:
                raise ConfigError(f"the first round must measure the baseline {self.baseline}, not {config}")
            if obs.failed:
                raise EngineError(f"the baseline round failed: all {obs.requests} requests failed ({obs.first_error})")
            self.objective = self.settings.objective.bind(obs)
            self.strategy = make_strategy(self.settings.strategy, self._context())
            cost = self.strategy.observe_baseline(obs)
        else:
            cost = self.strategy.observe(config, obs)
        self.stats.setdefault(config, ConfigStats(config)).add(obs, cost)
        role = "baseline" if not self.rounds else "search"
        incumbent = self.strategy.best() if self.run_log.path is not None else None  # for the report; costs a best()
        record = RoundRecord(len(self.rounds), role, config, obs, cost, note, incumbent=incumbent)
        if obs.failed:
            log.warning("round %d at %s failed: %s", record.round, config, obs.first_error)
        with uninterrupted():  # a stop signal here would count a round the run log does not hold
            self.rounds.append(record)
            self.run_log.write(record)
        if self.on_round is not None:
            self.on_round(record)
        return record

    # --- issue 21: the board's own default, measured outside the search -----------------------------------
    def record_governor(self, obs: Observation) -> RoundRecord:
        """Record a window served at the baseline's batch size with the clock left to the stock governor.

        It is not a search round (no strategy sees it): gains are quoted against it beside the baseline.
        """
        config = Config.of(self.baseline.batch_size)
        self.governor = ConfigStats(config)
        self.governor.add(obs, None)
        record = RoundRecord(-1, "governor", config, obs, None, "stock governor, clock not pinned")
        line = {**record.to_dict(), "type": "governor"}
        del line["round"]  # not a round: readers that pick round lines by their "round" key skip it
        self.run_log.write(line)
        return record

    def gain_sources(self, best: ConfigStats, base: ConfigStats) -> dict[str, object]:
        """The Summary fields of issue 21: the governor round and where the gain comes from against each baseline."""
        chosen = best.to_dict()
        governor = self.governor.to_dict() if self.governor is not None else None
        served = self.governor.served if self.governor is not None else []
        if governor is not None and served and self.objective is not None:
            if served[0].energy_per_request_j is not None or not self.objective.needs_energy:
                governor["cost"] = self.objective.cost(served[0])  # costed once the baseline bound the objective
        vs_base = attribute_stats(base.to_dict(), chosen)
        vs_governor = attribute_stats(governor, chosen) if governor is not None else None
        return {
            "governor": governor,
            "attribution": vs_base.to_dict() if vs_base else None,
            "attribution_vs_governor": vs_governor.to_dict() if vs_governor else None,
        }

    # ---------------------------------------------------------------------------------------------------------
    def set_traffic(self, traffic: Traffic) -> None:
        """The traffic changed: the strategy re-plans at once."""
        self.traffic = traffic
        if self.strategy is not None:
            self.strategy.set_traffic(traffic)

    def best(self) -> Config:
        """The session's current choice (the baseline before anything is known); see `choice`."""
        return self.choice().config

    def choice(self) -> Choice:
        """The strategy's choice under the session's rules: constraints met or said, never worse than the baseline."""
        search_choice = self.baseline if self.strategy is None else self.strategy.best()
        return choose(
            search_choice,
            self.stats,
            baseline=self.baseline,
            constraints=self.settings.constraints,
            inherited=self._inherited(),
        )

    def _inherited(self) -> dict[Config, list[int | None]]:
        """Requests queued when each config's windows began (the previous round's backlog; None where unknown)."""
        queued: dict[Config, list[int | None]] = {}
        previous: int | None = None
        for record in self.rounds:
            queued.setdefault(record.config, []).append(previous)
            previous = record.obs.backlog_requests
        return queued

    def finish(self, *, interrupted: bool = False) -> TuneResult:
        """Close the session: the summary record (`interrupted`: stopped early); EngineError if every search failed."""
        searched = self.rounds[1:]
        if searched and all(r.obs.failed for r in searched):
            raise EngineError(f"every search round failed: {searched[-1].obs.first_error}")
        choice = self.choice()
        best_stats = self._stats_of(choice.config)
        base_stats = self._stats_of(self.baseline)
        summary = Summary(
            objective=str(self.settings.objective),
            best=best_stats.to_dict(),
            baseline=base_stats.to_dict(),
            rounds=len(searched),
            failed_rounds=sum(r.obs.failed for r in self.rounds),
            interrupted=interrupted,
            **self.gain_sources(best_stats, base_stats),  # type: ignore[arg-type]
            constraints_met=choice.constraints_met,
            baseline_kept=choice.baseline_kept,
            search_choice=None
            if choice.search_choice == choice.config
            else self._stats_of(choice.search_choice).to_dict(),
            warnings=list(choice.warnings),
        )
        self.run_log.write(summary)
        return TuneResult(
            best=best_stats,
            baseline=base_stats,
            rounds=list(self.rounds),
            summary=summary,
            limits=self.settings.constraints.limits,
        )

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
            budget=s.budget,
            slo_ttft_p95_s=s.slo_ttft_p95_s,
            prior=s.prior,
            batching=s.batching,
        )


def play_round(runner: Runner | ContinuousRunner, session: TuningSession) -> RoundRecord:
    """One round on the replay stream: the session's next config, served for a full round or as a bounded probe."""
    config = session.next_config()
    batches = session.round_batches(config)
    obs = runner.measure(config, max_batches=batches)
    return session.record(config, obs, note=None if batches is None else f"probe: {batches} batch(es)")


def tune(
    *, runner: Runner | ContinuousRunner, session: TuningSession, budget: int, governor: bool = False
) -> TuneResult:
    """Drive `session` with replayed traffic: the baseline round, then `budget` search rounds, on one continuous
    arrival stream (the queue carries over from round to round).

    `governor`: first serve one window at the baseline's batch size with the clock released to the board's
    stock governor (issue 21), on a device whose clock edpilot may set and that has more than one level
    (elsewhere every round already runs at the board's own clock).
    """
    if budget < 1:
        raise ConfigError(f"--budget must be >= 1 round, got {budget}")
    if session.settings.objective.needs_energy and not runner.device.capabilities.has_meter:
        raise ConfigError(
            f"objective {session.settings.objective} needs an energy meter and device {runner.device.name} has none; "
            "use --objective latency"
        )
    device = runner.device
    if governor and device.capabilities.can_set_clocks and len(device.freqs_mhz()) > 1:  # issue 21: governor round
        # Nothing is pinned yet; restore() undoes only what edpilot pinned. The simulator, which starts pinned at
        # its top level, offers release_clocks() to hand its clock to its modelled governor.
        getattr(device, "release_clocks", device.restore)()
        session.record_governor(runner.measure(Config.of(session.baseline.batch_size)))
    for _ in range(budget + 1):
        raise_if_signalled()  # a signal whose raise was lost (inside C code or a finaliser) still stops the run
        play_round(runner, session)
    return session.finish()
