"""An Optuna study over the grid's integer axes, asked and told one trial at a time."""

from __future__ import annotations

import warnings

import optuna
from optuna.distributions import BaseDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from edpilot.search.peers.base import PeerStrategy, finite


class OptunaPeer(PeerStrategy):
    """Optuna ask/tell; subclasses give the sampler. Constraint values go with each trial (`set_constraint`)."""

    def _sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def _start(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._dists: dict[str, BaseDistribution] = {
            name: IntDistribution(0, n - 1) for name, n in zip(self.names, self.axes, strict=True) if n > 1
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(direction="minimize", sampler=self._sampler())
        self._trial: optuna.Trial | None = None

    def _ask(self) -> tuple[int, ...]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._trial = self.study.ask(self._dists)
        return tuple(self._trial.params.get(name, 0) for name in self.names)

    def _tell(
        self, point: tuple[int, ...], value: float | None, constraints: list[float] | None, *, asked: bool
    ) -> None:
        stored = {f"c{i}": v for i, v in enumerate(finite(constraints) or [])} if value is not None else {}
        state = TrialState.FAIL if value is None else TrialState.COMPLETE
        if asked and self._trial is not None:
            for key, v in stored.items():
                self._trial.set_constraint(key, v)
            self.study.tell(self._trial, None if value is None else value, state=state)
            self._trial = None
            return
        params = {name: index for name, index in zip(self.names, point, strict=True) if name in self._dists}
        self.study.add_trial(
            create_trial(
                state=state,
                value=value,
                params=params,
                distributions=self._dists,
                constraints=stored or None,
            )
        )
