"""A run log as the report sees it: what was optimised, every round, one `ConfigStats` per config, the choice.

`load_report(data)` groups the checked rounds of `read_run_log` by config into the core's `ConfigStats` and
ranks them by the optimised cost; it does no checking of its own (the records did it on reading).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edpilot.records import RoundRecord, RunHeader
from edpilot.runlog import RunLogData
from edpilot.space import Config
from edpilot.stats import ConfigStats

_UNITS = {
    "edp": "EDP (J·s)",
    "ed2p": "ED²P (J·s²)",
    "energy": "energy per request (J)",
    "latency": "mean latency (s)",
}


def objective_label(objective: str | None) -> str:
    """Label of an objective's cost with its unit, e.g. 'EDP (J·s)' or 'weighted cost α=0.5 (baseline = 1)'."""
    if objective is None:
        return "cost"
    name, _, alpha = objective.partition(":")
    if name == "weighted":
        return f"weighted cost α={alpha or '0.5'} (baseline = 1)"
    return _UNITS.get(name, f"{objective} cost")


def freq_text(freq_mhz: float | None) -> str:
    """'816' for a level in MHz; 'no clock' for a device without a clock knob."""
    return "no clock" if freq_mhz is None else f"{freq_mhz:g}"


@dataclass(frozen=True)
class RunReport:
    """Everything the table and the plots show; `configs` sorted by the optimised cost, lowest first."""

    header: RunHeader | None
    rounds: tuple[RoundRecord, ...]
    configs: tuple[ConfigStats, ...]
    best: Config | None
    baseline: Config | None
    interrupted: bool = False  # a signal stopped the run: the choice is the best of what it had measured

    @property
    def objective(self) -> str | None:
        """The optimised objective as the run wrote it ('edp', 'weighted:0.5', ...); None without a header."""
        return None if self.header is None else self.header.objective

    @property
    def objective_label(self) -> str:
        """Axis/column label of the optimised cost, with its unit."""
        return objective_label(self.objective)

    @property
    def has_energy(self) -> bool:
        """Whether any config has an energy reading (a latency-only device has none)."""
        return any(s.energy_per_request_j is not None for s in self.configs)

    def stats(self, config: Config | None) -> ConfigStats | None:
        """The statistics of one config, or None where it was not measured."""
        return next((s for s in self.configs if s.config == config), None)

    def title(self) -> str:
        """One line naming device, model, arrival rate, objective and energy scope."""
        h = self.header
        if h is None:
            return "device ? · model ? · λ ? · objective: ? · energy: ?"
        rate = h.arrivals if h.arrival_rate_per_s is None else f"λ = {h.arrival_rate_per_s:g} req/s ({h.arrivals})"
        energy = f"energy: {h.energy_scope}" if self.has_energy else "energy: not measured"
        parts = [h.device_name or "device ?", h.model or "model ?", rate]
        return " · ".join([*parts, f"objective: {h.objective}", energy])


def sort_key(s: ConfigStats) -> tuple[float, ...]:
    """Lowest optimised cost first; configs without a cost (failed, or not costed) by EDP, then latency."""
    inf = float("inf")
    return (
        not s.served,
        inf if s.cost is None else s.cost,
        inf if s.edp is None else s.edp,
        inf if s.mean_latency_s is None else s.mean_latency_s,
    )


def load_report(data: RunLogData) -> RunReport:
    """The report of a run log read by `read_run_log`: rounds grouped by config into ConfigStats and ranked."""
    groups: dict[Config, ConfigStats] = {}
    for r in data.rounds:
        groups.setdefault(r.config, ConfigStats(r.config)).add(r.obs, r.cost)
    if data.summary is not None:
        baseline: Config | None = data.summary.baseline_config
    elif data.header is not None:
        baseline = data.header.baseline_config
    else:
        baseline = data.rounds[0].config if data.rounds[0].role == "baseline" else None
    return RunReport(
        header=data.header,
        rounds=tuple(data.rounds),
        configs=tuple(sorted(groups.values(), key=sort_key)),
        best=None if data.summary is None else data.summary.best_config,
        baseline=baseline,
        interrupted=data.summary is not None and data.summary.interrupted,
    )


def pareto_front(configs: Sequence[ConfigStats]) -> list[ConfigStats]:
    """Configs no other beats on both energy per request and mean latency, by latency (energy needed)."""
    front: list[ConfigStats] = []
    best_energy = float("inf")
    measured = [s for s in configs if s.energy_per_request_j is not None and s.mean_latency_s is not None]
    for s in sorted(measured, key=lambda s: (s.mean_latency_s, s.energy_per_request_j)):
        if s.energy_per_request_j < best_energy:  # type: ignore[operator]
            front.append(s)
            best_energy = s.energy_per_request_j  # type: ignore[assignment]
    return front


def window_values(stats: ConfigStats, metric: str) -> list[float]:
    """One config's `metric` per window that served something: 'cost' (the optimised cost), or an Observation field."""
    if metric == "cost":
        return [c for c, o in zip(stats.costs, stats.observations) if c is not None and not o.failed]
    return [v for v in (getattr(o, metric) for o in stats.served) if v is not None]


def spread(stats: ConfigStats, metric: str) -> float | None:
    """Sample standard deviation of `metric` across a config's windows; None with fewer than two windows."""
    values = window_values(stats, metric)
    if len(values) < 2:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        sd = float(np.std(values, ddof=1))
    return sd if math.isfinite(sd) else None  # windows near the float limit: no spread rather than inf


def incumbent_means(report: RunReport, metric: str) -> list[tuple[int, Config, float]]:
    """Per round: the incumbent (the chosen-so-far config) and the mean of its windows measured up to that round.

    The incumbent is what the round record says the strategy would choose; a log without it falls back to the
    config with the lowest mean so far. The last round's incumbent is the run's choice where the summary names
    one, so the line ends at the chosen config's mean — never at a lucky single window.
    """
    seen: dict[Config, ConfigStats] = {}
    out: list[tuple[int, Config, float]] = []
    for n, r in enumerate(report.rounds):
        seen.setdefault(r.config, ConfigStats(r.config)).add(r.obs, r.cost)
        means = {c: m for c, s in seen.items() if (m := getattr(s, metric)) is not None}
        incumbent = r.incumbent or (min(means, key=lambda c: means[c]) if means else None)
        if n == len(report.rounds) - 1 and report.best is not None:
            incumbent = report.best
        if incumbent in means:
            out.append((r.round, incumbent, means[incumbent]))
    return out
