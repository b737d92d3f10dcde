"""The session's final say over the strategy's choice: constraints that cannot be met, and the baseline kept.

    choice = choose(strategy.best(), stats, baseline=..., constraints=Constraints(slo_p95_s=3.0))
    choice.config, choice.constraints_met, choice.warnings, choice.baseline_kept

Two rules, both on measured windows only:
- Constraints (`--slo-p95`, `--power-cap`): when the strategy's choice breaks one and a measured config meets
  every constraint, the cheapest such config is chosen; when none does, the config nearest to meeting them
  (the smallest worst ratio of measured value to limit) is chosen and each unmet constraint is said in one
  line with the closest value any measured config reached.
- The baseline: a choice whose cleanest window (its lowest cost) costs more than the baseline's is not chosen
  when the baseline is at least as close to the constraints and keeps up if the choice does; the baseline is
  kept, and said. The lowest, not the mean: a window that inherited a backlog (from a probe, or a config that
  fell behind) is costlier through no fault of its config, and once made a choice at the oracle lose to a
  baseline 2.3× worse. Where the session says what each window inherited (`inherited`: requests queued when it
  began), only windows that began with at most a batch queued are compared; a choice with none such is not
  judged against the baseline (its windows' costs are the backlog's, not its own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edpilot.space import Config
from edpilot.stats import ConfigStats

# constraint name -> (its option, what it limits, unit)
CONSTRAINTS = {"slo_p95_s": ("--slo-p95", "p95 latency", "s"), "power_cap_w": ("--power-cap", "power", "W")}


@dataclass(frozen=True)
class Constraints:
    """Limits on the measured p95 latency (s) and window power (W); None: no limit."""

    slo_p95_s: float | None = None
    power_cap_w: float | None = None

    @property
    def limits(self) -> dict[str, float]:
        """The constraints given, by name."""
        given = {"slo_p95_s": self.slo_p95_s, "power_cap_w": self.power_cap_w}
        return {k: v for k, v in given.items() if v is not None}

    def met(self, stats: ConfigStats) -> dict[str, bool]:
        """Whether each given constraint holds on `stats`' windows (a value not measured does not hold)."""
        return {name: self.ratio(stats, name) <= 1.0 for name in self.limits}

    def ratio(self, stats: ConfigStats, name: str) -> float:
        """Measured value over the limit of constraint `name` (inf when the value was not measured)."""
        value = measured(stats, name)
        return math.inf if value is None else value / self.limits[name]

    def excess(self, stats: ConfigStats) -> float:
        """How far `stats` is from meeting every constraint: the worst value / limit, 0 when none is given."""
        return max((self.ratio(stats, name) for name in self.limits), default=0.0)


def measured(stats: ConfigStats, name: str) -> float | None:
    """The measured value a constraint limits: mean p95 latency (s) or mean window power (W)."""
    return stats.p95_latency_s if name == "slo_p95_s" else stats.power_w


@dataclass(frozen=True)
class Choice:
    """The config the session stands by, what the strategy chose, and what was said about it."""

    config: Config
    search_choice: Config
    constraints_met: dict[str, bool] = field(default_factory=dict)
    baseline_kept: bool = False
    warnings: tuple[str, ...] = ()


def choose(
    search_choice: Config,
    stats: dict[Config, ConfigStats],
    *,
    baseline: Config,
    constraints: Constraints,
    inherited: dict[Config, list[int | None]] | None = None,
) -> Choice:
    """Apply the constraint and baseline rules to the strategy's `search_choice` over the measured `stats`;
    `inherited[c][k]`: requests queued when config c's k-th window began (None: not known)."""
    usable = {c: s for c, s in stats.items() if s.usable}

    def of(c: Config) -> ConfigStats:
        return stats.get(c) or ConfigStats(c)

    config, warnings = search_choice, []
    if constraints.limits and constraints.excess(of(config)) > 1.0 and usable:
        meeting = [c for c, s in usable.items() if constraints.excess(s) <= 1.0]
        if meeting:
            config = min(meeting, key=lambda c: (not usable[c].keeps_up, usable[c].mean_cost))
        else:
            config = min(usable, key=lambda c: (constraints.excess(usable[c]), usable[c].mean_cost))
            warnings = [
                _unmet_line(name, usable, config, constraints)
                for name, ok in constraints.met(of(config)).items()
                if not ok
            ]
    kept = _worse_than_baseline(of(config), of(baseline), constraints, inherited or {})
    if kept:
        warnings.append(_kept_line(of(config), of(baseline), inherited or {}))
        config = baseline
    return Choice(config, search_choice, constraints.met(of(config)), kept, tuple(warnings))


def _worse_than_baseline(
    chosen: ConfigStats, base: ConfigStats, constraints: Constraints, inherited: dict[Config, list[int | None]]
) -> bool:
    if chosen.config == base.config or not (chosen.usable and base.usable):
        return False
    if chosen.keeps_up and not base.keeps_up:
        return False
    lowest, base_lowest = _cleanest_cost(chosen, inherited), _cleanest_cost(base, inherited)
    if not math.isfinite(lowest):
        return False  # every window of the choice began behind a backlog: nothing of its own to compare
    worse = lowest > base_lowest
    return worse and constraints.excess(base) <= max(constraints.excess(chosen), 1.0)


def _cleanest_cost(stats: ConfigStats, inherited: dict[Config, list[int | None]] | None = None) -> float:
    """The lowest cost of a config's windows that began with at most a batch queued (every window where the
    session does not say): a window's cost is raised, seldom lowered, by what it does not owe to its config —
    a backlog inherited from a probe or a config that fell behind, a thermal hiccup."""
    queued = (inherited or {}).get(stats.config) or [None] * len(stats.costs)
    clean = (c for c, q in zip(stats.costs, queued) if c is not None and (q is None or q <= stats.config.batch_size))
    return min(clean, default=math.inf)


def _unmet_line(name: str, usable: dict[Config, ConfigStats], chosen: Config, constraints: Constraints) -> str:
    option, what, unit = CONSTRAINTS[name]
    values = {c: measured(s, name) for c, s in usable.items()}
    known = {c: v for c, v in values.items() if v is not None}
    limit = f"{option} {constraints.limits[name]:g} {unit}"
    if not known:
        return f"{limit} cannot be checked: no measured config has a {what} reading; serving {chosen}"
    closest = min(known, key=known.__getitem__)
    at_chosen = values[chosen]
    chosen_value = "not measured" if at_chosen is None else f"{at_chosen:.3g} {unit}"
    return (
        f"{limit} cannot be met: the lowest {what} measured is {known[closest]:.3g} {unit} (at {closest}); "
        f"chose {chosen} ({what} {chosen_value}), the config nearest to meeting the constraints"
    )


def _kept_line(chosen: ConfigStats, base: ConfigStats, inherited: dict[Config, list[int | None]]) -> str:
    lowest, base_lowest = _cleanest_cost(chosen, inherited), _cleanest_cost(base, inherited)
    worse = 100.0 * (lowest / base_lowest - 1.0) if base_lowest > 0 else math.inf
    return (
        f"the search's choice {chosen.config} measured {worse:.1f} % worse than the baseline {base.config} "
        f"(the lowest of {len(chosen.served)} and {len(base.served)} windows): keeping the baseline"
    )
