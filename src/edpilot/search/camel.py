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
from edpilot.search.base import CostFn, Strategy
from edpilot.space import Config, ConfigSpace

PRIOR_TAU = 0.5  # assumed: prior spread of arm means, in units of the first observed cost
PRIOR_NOISE_SIGMA = 0.05  # assumed: per-window noise, in units of the first observed cost
PRIOR_NOISE_DOF = 2.0  # assumed: weight of PRIOR_NOISE_SIGMA against pooled residuals
MIN_TAU = 0.02  # floor on the estimated spread so unseen arms keep a chance


class CamelStrategy(Strategy):
    """Gaussian Thompson sampling over every (frequency, batch) arm with a hierarchical conjugate prior."""

    name = "camel"

    def __init__(self, space: ConfigSpace, *, cost_fn: CostFn, seed: int | np.random.Generator = 0) -> None:
        super().__init__(space, cost_fn=cost_fn, seed=seed)
        self._scale: float | None = None
        self._configs = space.configs

    def observe(self, config: Config, obs: Observation) -> float:
        """Record the cost; the first cost fixes the normalisation scale."""
        cost = super().observe(config, obs)
        if self._scale is None:
            self._scale = abs(cost) or 1.0
        return cost

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of every arm's normalised cost, in grid order."""
        scale = self._scale or 1.0
        stats = [self.arms.get(c) for c in self._configs]
        counts = np.array([len(s.costs) if s else 0 for s in stats], dtype=float)
        sums = np.array([sum(s.costs) / scale if s else 0.0 for s in stats])
        seen = counts > 0
        arm_means = np.divide(sums, counts, out=np.zeros_like(sums), where=seen)

        mu = float(arm_means[seen].mean()) if seen.any() else 1.0
        tau = PRIOR_TAU
        if seen.sum() >= 2:
            tau = max(float(arm_means[seen].std(ddof=1)), MIN_TAU)
        within_ss = sum(float(np.sum((np.asarray(s.costs) / scale - m) ** 2)) for s, m in zip(stats, arm_means) if s)
        within_dof = float((counts[seen] - 1).sum())
        sigma2 = (PRIOR_NOISE_DOF * PRIOR_NOISE_SIGMA**2 + within_ss) / (PRIOR_NOISE_DOF + within_dof)

        precision = 1.0 / tau**2 + counts / sigma2
        mean = (mu / tau**2 + sums / sigma2) / precision
        return mean, 1.0 / np.sqrt(precision)

    def propose(self) -> Config:
        """Thompson sampling: the arm with the lowest posterior draw."""
        mean, sd = self.posterior()
        draws = self.rng.normal(mean, sd)
        return self._configs[int(np.argmin(draws))]

    def best(self) -> Config:
        """Lowest posterior mean among measured arms, preferring arms that keep up."""
        if not self.arms:
            return self.space.baseline()
        mean, _ = self.posterior()
        feasible = [c for c, s in self.arms.items() if s.keeps_up] or list(self.arms)
        return min(feasible, key=lambda c: mean[self.space.index(c)])
