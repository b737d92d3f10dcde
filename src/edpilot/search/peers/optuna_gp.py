"""`optuna-gp`: Optuna's Gaussian-process sampler (GPSampler, which needs torch) over the grid."""

from __future__ import annotations

import optuna
import torch  # noqa: F401  (GPSampler needs it: without torch the name fails at once, in one line)

from edpilot.search.peers.optuna_study import OptunaPeer


class OptunaGpStrategy(OptunaPeer):
    """Optuna GP: `startup_trials` random trials, then log-expected-improvement on a Matérn-5/2 GP."""

    name = "optuna-gp"

    def _sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(
            seed=self.seed,
            n_startup_trials=self.startup_trials,
        )
