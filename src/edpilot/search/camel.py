"""`camel`: the paper's search, reconstructed (docs/camel.md lists what is known and what we assumed).

Each config is an arm of a multi-armed bandit whose cost is Gaussian. Arm means share a hierarchical
Gaussian prior θ_a ~ N(μ, τ²) whose μ and τ² are estimated from the arms seen so far (empirical Bayes);
observations are y ~ N(θ_a, σ²) with σ² pooled over repeated measurements under a weak prior. Thompson
sampling draws θ_a from each arm's conjugate posterior and measures the arm with the lowest draw.
Costs are divided by the first observed cost (the baseline, when the tuner measures it first), so the
priors are scale-free.
"""

from __future__ import annotations

import numpy as np

from edpilot.objective import Observation
from edpilot.search.base import SearchContext, Strategy
from edpilot.space import Config

PRIOR_TAU = 0.5  # assumed: prior spread of arm means, in units of the first observed cost
PRIOR_NOISE_SIGMA = 0.05  # assumed: per-window noise, in units of the first observed cost
PRIOR_NOISE_DOF = 2.0  # assumed: weight of PRIOR_NOISE_SIGMA against pooled residuals
MIN_TAU = 0.02  # floor on the estimated spread so unseen arms keep a chance


class CamelStrategy(Strategy):
    """Gaussian Thompson sampling over every (frequency, batch) arm with a hierarchical conjugate prior."""

    name = "camel"

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        self._scale: float | None = None
        self._configs = ctx.space.configs

    def observe(self, config: Config, obs: Observation) -> float | None:
        """Record the cost; the first cost fixes the normalisation scale."""
        cost = super().observe(config, obs)
        if self._scale is None and cost is not None:
            self._scale = abs(cost) or 1.0
        return cost

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of every arm's normalised cost, in grid order."""
        scale = self._scale or 1.0
        stats = [self.arms.get(c) for c in self._configs]
        costs = [[c / scale for c in s.costs if c is not None] if s else [] for s in stats]
        counts = np.array([len(c) for c in costs], dtype=float)
        sums = np.array([sum(c) for c in costs])
        seen = counts > 0
        arm_means = np.divide(sums, counts, out=np.zeros_like(sums), where=seen)

        mu = float(arm_means[seen].mean()) if seen.any() else 1.0
        tau = PRIOR_TAU
        if seen.sum() >= 2:
            tau = max(float(arm_means[seen].std(ddof=1)), MIN_TAU)
        within_ss = sum(float(np.sum((np.asarray(c) - m) ** 2)) for c, m in zip(costs, arm_means) if c)
        within_dof = float((counts[seen] - 1).sum())
        sigma2 = (PRIOR_NOISE_DOF * PRIOR_NOISE_SIGMA**2 + within_ss) / (PRIOR_NOISE_DOF + within_dof)

        precision = 1.0 / tau**2 + counts / sigma2
        mean = (mu / tau**2 + sums / sigma2) / precision
        return mean, 1.0 / np.sqrt(precision)

    def propose(self) -> Config:
        """Thompson sampling: the arm with the lowest posterior draw (arms whose every window failed excluded)."""
        mean, sd = self.posterior()
        draws = self.rng.normal(mean, sd)
        for config, stats in self.arms.items():
            if not stats.usable:
                draws[self.space.index(config)] = np.inf
        return self._configs[int(np.argmin(draws))]

    def best(self) -> Config:
        """Lowest posterior mean among measured arms, preferring arms that keep up."""
        usable = [c for c, s in self.arms.items() if s.usable]
        if not usable:
            return self.ctx.baseline
        mean, _ = self.posterior()
        feasible = [c for c in usable if self.arms[c].keeps_up] or usable
        return min(feasible, key=lambda c: mean[self.space.index(c)])
