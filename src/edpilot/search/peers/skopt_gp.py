"""`skopt`: scikit-optimize's Bayesian optimiser (a GP with the gp_hedge acquisition) over the grid.

scikit-optimize takes no constraints: a window that breaks one is told its value raised by how far it broke
it (the sum of measured / limit − 1 over the constraints broken); a failed window the worst value told so far
plus one. A grid of a single config needs no optimiser.
"""

from __future__ import annotations

import warnings

from skopt import Optimizer
from skopt.space import Integer

from edpilot.search.peers.base import PeerStrategy

FAILED_PENALTY = 1.0  # added to the worst log-cost told so far for a failed window


class SkoptGpStrategy(PeerStrategy):
    """scikit-optimize `Optimizer(base_estimator="GP")`: `startup_trials` random points, then its GP."""

    name = "skopt"

    def _start(self) -> None:
        self._sizes = self.axes
        dims = [Integer(0, n - 1, name=name) for name, n in zip(self.names, self._sizes, strict=True) if n > 1]
        self.optimizer = (
            Optimizer(dims, base_estimator="GP", n_initial_points=self.startup_trials, random_state=self.seed)
            if dims
            else None
        )
        self._worst: float | None = None

    def _ask(self) -> tuple[int, ...]:
        if self.optimizer is None:
            return tuple(0 for _ in self._sizes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = iter(self.optimizer.ask())
        return tuple(int(next(x)) if n > 1 else 0 for n in self._sizes)

    def _tell(
        self, point: tuple[int, ...], value: float | None, constraints: list[float] | None, *, asked: bool
    ) -> None:
        if value is None:
            value = (self._worst if self._worst is not None else 0.0) + FAILED_PENALTY
        elif constraints is not None:
            value += sum(max(0.0, min(c, 1e6)) for c in constraints)
        self._worst = value if self._worst is None else max(self._worst, value)
        x = [int(i) for i, n in zip(point, self._sizes) if n > 1]
        if self.optimizer is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.optimizer.tell(x, value)
