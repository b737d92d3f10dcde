"""An Optuna study over the grid's two integer axes, asked and told one trial at a time."""

from __future__ import annotations

import warnings

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from edpilot.search.peers.base import PeerStrategy, finite

CONSTRAINTS_ATTR = "constraints"


def constraints_of(trial: FrozenTrial) -> list[float]:
    """The constraint values stored with a trial (the samplers' `constraints_func`)."""
    return trial.user_attrs.get(CONSTRAINTS_ATTR, [])


class OptunaPeer(PeerStrategy):
    """Optuna ask/tell; subclasses give the sampler."""

    def _sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    @property
    def _uses_constraints(self) -> bool:
        return self.ctx.slo_p95_s is not None or self.ctx.power_cap_w is not None

    def _start(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        nf, nb = self.axes
        self._dists = {name: IntDistribution(0, n - 1) for name, n in (("freq", nf), ("batch", nb)) if n > 1}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(direction="minimize", sampler=self._sampler())
        self._trial: optuna.Trial | None = None

    def _ask(self) -> tuple[int, int]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._trial = self.study.ask(self._dists)
        return self._trial.params.get("freq", 0), self._trial.params.get("batch", 0)

    def _tell(self, point: tuple[int, int], value: float | None, constraints: list[float] | None, *, asked: bool):
        stored = finite(constraints)
        state = TrialState.FAIL if value is None else TrialState.COMPLETE
        if asked and self._trial is not None:
            if stored is not None:
                self._trial.set_user_attr(CONSTRAINTS_ATTR, stored)
            self.study.tell(self._trial, None if value is None else value, state=state)
            self._trial = None
            return
        params = {name: index for name, index in zip(("freq", "batch"), point) if name in self._dists}
        self.study.add_trial(
            create_trial(
                state=state,
                value=value,
                params=params,
                distributions=self._dists,
                user_attrs={} if stored is None else {CONSTRAINTS_ATTR: stored},
                constraints=None if stored is None else {f"c{i}": v for i, v in enumerate(stored)},
            )
        )
