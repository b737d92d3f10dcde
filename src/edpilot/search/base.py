"""The ask/tell protocol every search strategy follows, and the bookkeeping they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edpilot.objective import Observation
from edpilot.space import Config, ConfigSpace

CostFn = Callable[[Observation], float]


@dataclass
class ArmStats:
    """Everything observed at one config: costs and whether each window kept up with arrivals."""

    costs: list[float] = field(default_factory=list)
    kept_up: list[bool] = field(default_factory=list)

    @property
    def mean_cost(self) -> float:
        """Mean observed cost."""
        return float(np.mean(self.costs))

    @property
    def keeps_up(self) -> bool:
        """True when most windows at this config kept up with the arrivals."""
        return sum(self.kept_up) * 2 > len(self.kept_up)


class Strategy(ABC):
    """Proposes configs and learns from their observations; it never runs anything itself.

    Subclasses implement `propose`; `observe` records each observation's cost (from `cost_fn`), and
    `best` returns the config with the lowest mean cost among those that kept up with the arrivals.
    """

    name: str = ""

    def __init__(self, space: ConfigSpace, *, cost_fn: CostFn, seed: int | np.random.Generator = 0) -> None:
        self.space = space
        self.cost_fn = cost_fn
        self.rng = np.random.default_rng(seed)
        self.arms: dict[Config, ArmStats] = {}

    @abstractmethod
    def propose(self) -> Config:
        """The next config to measure."""

    def observe(self, config: Config, obs: Observation) -> float:
        """Record an observation at `config`; returns its cost."""
        cost = self.cost_fn(obs)
        stats = self.arms.setdefault(config, ArmStats())
        stats.costs.append(cost)
        stats.kept_up.append(obs.keeps_up)
        return cost

    def best(self) -> Config:
        """The incumbent: lowest mean observed cost, preferring configs that keep up."""
        if not self.arms:
            return self.space.baseline()
        feasible = {c: s for c, s in self.arms.items() if s.keeps_up} or self.arms
        return min(feasible, key=lambda c: feasible[c].mean_cost)

    def unobserved(self) -> list[Config]:
        """Configs of the grid not measured yet, in grid order."""
        return [c for c in self.space if c not in self.arms]
