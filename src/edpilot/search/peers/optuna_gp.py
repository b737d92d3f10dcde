"""`optuna-gp`: Optuna's Gaussian-process sampler (GPSampler, which needs torch) over the grid."""

from __future__ import annotations

import optuna

from edpilot.search.peers.optuna_study import OptunaPeer


class OptunaGpStrategy(OptunaPeer):
    """Optuna GP: `startup_trials` random trials, then log-expected-improvement on a Matérn-5/2 GP."""

    name = "optuna-gp"

    def _sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(
            seed=self.seed,
            n_startup_trials=self.startup_trials,
        )
