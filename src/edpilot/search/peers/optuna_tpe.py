"""`optuna-tpe`: Optuna's tree-structured Parzen estimator (TPESampler) over the grid."""

from __future__ import annotations

import optuna

from edpilot.search.peers.optuna_study import OptunaPeer


class OptunaTpeStrategy(OptunaPeer):
    """Optuna TPE: `startup_trials` random trials, then the expected-improvement ratio of two Parzen densities."""

    name = "optuna-tpe"

    def _sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            seed=self.seed,
            n_startup_trials=self.startup_trials,
            multivariate=True,
        )
