"""The ask/tell protocol every search strategy follows, the context it is built with, and shared bookkeeping."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import numpy as np

from edpilot.objective import BoundObjective, EnergyScope, Observation
from edpilot.search.prior import HardwarePrior
from edpilot.serving.traffic import Traffic
from edpilot.space import Config, ConfigSpace
from edpilot.stats import ConfigStats


@dataclass(frozen=True)
class SearchContext:
    """What a strategy is told: the grid, the objective bound to the baseline, the traffic and the limits.

    `idle_power_w` is the device's idle power (W) when known (a profile records it); `slo_p95_s` and
    `power_cap_w` are constraints on the p95 latency (s) and the window's mean power (W); `budget` is the
    number of search rounds the driver means to ask for after the baseline round (None: open-ended, as
    `serve` holding the best config between re-plans). `prior` is another board's run of the same model
    (`--prior`, search.prior): the `edpilot` strategy starts its hardware model from it; the others ignore it.
    `batching` is `static` or `continuous` (a config's batch
    size is then the most sequences decoding at once, and a window's batch time and energy are per decode step).
    """

    space: ConfigSpace
    objective: BoundObjective
    baseline: Config
    traffic: Traffic
    energy_scope: EnergyScope = "total"
    idle_power_w: float | None = None
    seed: int | np.random.Generator = 0
    slo_p95_s: float | None = None
    power_cap_w: float | None = None
    budget: int | None = None
    slo_ttft_p95_s: float | None = None
    prior: HardwarePrior | None = None
    batching: str = "static"


class Strategy(ABC):
    """Proposes configs and learns from their observations; it never runs anything itself.

    The driver hands over the baseline round first, as such (`observe_baseline`), then alternates `propose`
    and `observe`. Subclasses implement `propose`; `observe` costs each observation with the bound objective
    (a failed window costs None and its config is never chosen), and `best` returns the config with the
    lowest mean cost among those that kept up and met the constraints.
    """

    name: str = ""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self.space = ctx.space
        self.rng = np.random.default_rng(ctx.seed)
        self.arms: dict[Config, ConfigStats] = {}

    @abstractmethod
    def propose(self) -> Config:
        """The next config to measure."""

    def round_batches(self, config: Config) -> int | None:
        """How many batches to serve at the proposed `config`: None for a full round (the default), 1–2 for a
        bounded probe of a config that may not keep up."""
        return None

    def observe(self, config: Config, obs: Observation) -> float | None:
        """Record an observation at `config`; returns its cost (None for a failed window)."""
        cost = None if obs.failed else self.ctx.objective.cost(obs)
        self.arms.setdefault(config, ConfigStats(config)).add(obs, cost)
        return cost

    def observe_baseline(self, obs: Observation) -> float | None:
        """The baseline round (`ctx.baseline`, measured before the strategy was built); returns its cost."""
        return self.observe(self.ctx.baseline, obs)

    def set_traffic(self, traffic: Traffic) -> None:
        """The traffic changed (rate, lengths): re-plan from what is known."""
        self.ctx = replace(self.ctx, traffic=traffic)

    def best(self) -> Config:
        """The incumbent: lowest mean observed cost, preferring configs that keep up and meet the constraints."""
        usable = {c: s for c, s in self.arms.items() if s.usable}
        if not usable:
            return self.ctx.baseline
        ok = {
            c: s
            for c, s in usable.items()
            if s.keeps_up
            and s.meets(
                slo_p95_s=self.ctx.slo_p95_s, power_cap_w=self.ctx.power_cap_w, slo_ttft_p95_s=self.ctx.slo_ttft_p95_s
            )
        }
        pool = ok or {c: s for c, s in usable.items() if s.keeps_up} or usable
        return min(pool, key=lambda c: pool[c].mean_cost)

    def unobserved(self) -> list[Config]:
        """Configs of the grid not measured yet, in grid order."""
        return [c for c in self.space if c not in self.arms]
