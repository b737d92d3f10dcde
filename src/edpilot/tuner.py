"""The tuning loop: strategy ⇄ runner for a budget of rounds, logged round by round.

Round 0 measures the baseline (what every gain is quoted against, and the normaliser of the
`weighted` objective); rounds 1..budget are the strategy's proposals. The strategy is told about
the baseline too, so its measurement is never wasted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edpilot.errors import ConfigError
from edpilot.objective import Objective, Observation
from edpilot.runlog import RunLog
from edpilot.runner import Runner
from edpilot.search import make_strategy
from edpilot.space import Config, ConfigSpace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Round:
    """One measurement window of the tuning run."""

    index: int
    role: str  # "baseline" or "search"
    config: Config
    obs: Observation
    cost: float


@dataclass(frozen=True)
class ConfigSummary:
    """Mean of every observation at one config: energy per request (J), latencies (s), EDP (J·s)."""

    config: Config
    windows: int
    energy_per_request_j: float | None
    mean_latency_s: float
    p95_latency_s: float
    edp: float | None
    keeps_up: bool

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return {
            "freq_mhz": self.config.freq_mhz,
            "batch_size": self.config.batch_size,
            "windows": self.windows,
            "energy_per_request_j": self.energy_per_request_j,
            "mean_latency_s": self.mean_latency_s,
            "p95_latency_s": self.p95_latency_s,
            "edp": self.edp,
            "keeps_up": self.keeps_up,
        }


@dataclass(frozen=True)
class TuneResult:
    """What a tuning run found: the chosen config against the baseline, and every round."""

    best: ConfigSummary
    baseline: ConfigSummary
    rounds: list[Round]

    @property
    def edp_gain_pct(self) -> float | None:
        """How much lower the chosen config's EDP is than the baseline's, in percent."""
        if self.best.edp is None or self.baseline.edp is None:
            return None
        return 100.0 * (1.0 - self.best.edp / self.baseline.edp)

    def summary_record(self) -> dict[str, object]:
        """The run log's closing `summary` record."""
        return {
            "type": "summary",
            "best": {"freq_mhz": self.best.config.freq_mhz, "batch_size": self.best.config.batch_size},
            "baseline": {
                "freq_mhz": self.baseline.config.freq_mhz,
                "batch_size": self.baseline.config.batch_size,
            },
            "edp_best": self.best.edp,
            "edp_baseline": self.baseline.edp,
            "edp_gain_pct": self.edp_gain_pct,
            "rounds": len(self.rounds) - 1,
            "best_stats": self.best.to_dict(),
            "baseline_stats": self.baseline.to_dict(),
        }


def summarize_config(config: Config, observations: list[Observation]) -> ConfigSummary:
    """Average the observations made at `config`."""
    energies = [o.energy_per_request_j for o in observations]
    edps = [o.edp for o in observations]
    return ConfigSummary(
        config=config,
        windows=len(observations),
        energy_per_request_j=None if None in energies else float(np.mean(energies)),
        mean_latency_s=float(np.mean([o.mean_latency_s for o in observations])),
        p95_latency_s=float(np.mean([o.p95_latency_s for o in observations])),
        edp=None if None in edps else float(np.mean(edps)),
        keeps_up=sum(o.keeps_up for o in observations) * 2 > len(observations),
    )


def round_record(r: Round) -> dict[str, object]:
    """The run log's `round` record for one window."""
    return {
        "type": "round",
        "round": r.index,
        "role": r.role,
        "freq_mhz": r.config.freq_mhz,
        "batch_size": r.config.batch_size,
        **r.obs.to_dict(),
        "cost": r.cost,
    }


def tune(
    *,
    runner: Runner,
    space: ConfigSpace,
    strategy: str,
    objective: Objective,
    budget: int,
    baseline: Config | None = None,
    seed: int = 0,
    run_log: RunLog | None = None,
    on_round: Callable[[Round], None] | None = None,
) -> TuneResult:
    """Measure the baseline, then run `budget` rounds of `strategy`; return the chosen config."""
    if budget < 1:
        raise ConfigError(f"--budget must be >= 1 round, got {budget}")
    baseline = space.validate(baseline or space.baseline())
    if objective.needs_energy and runner.device.energy_j() is None:
        raise ConfigError(
            f"objective {objective} needs an energy meter and device {runner.device.name} has none; "
            "use --objective latency"
        )
    run_log = run_log or RunLog(None)
    rounds: list[Round] = []

    def record(r: Round) -> None:
        rounds.append(r)
        run_log.write(round_record(r))
        if on_round is not None:
            on_round(r)

    baseline_obs = runner.measure(baseline)

    def cost_fn(obs: Observation) -> float:
        return objective.cost(obs, baseline_obs)

    search = make_strategy(strategy, space, cost_fn=cost_fn, seed=seed)
    record(Round(0, "baseline", baseline, baseline_obs, search.observe(baseline, baseline_obs)))
    for index in range(1, budget + 1):
        config = space.validate(search.propose())
        obs = runner.measure(config)
        record(Round(index, "search", config, obs, search.observe(config, obs)))
        log.debug("round %d %s cost %.4g", index, config, rounds[-1].cost)

    best = search.best()
    result = TuneResult(
        best=summarize_config(best, [r.obs for r in rounds if r.config == best]),
        baseline=summarize_config(baseline, [r.obs for r in rounds if r.config == baseline]),
        rounds=rounds,
    )
    run_log.write(result.summary_record())
    return result
