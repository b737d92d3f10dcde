"""What the peers share: the grid as integer axes (each knob, then batch), a pending ask, and the cost they are told."""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np

from edpilot.objective import Observation
from edpilot.search.base import SearchContext, Strategy
from edpilot.serving.traffic import Traffic
from edpilot.space import Config
from edpilot.stats import ConfigStats

MAX_STARTUP = 10  # the libraries' own default number of random trials before their model leads
MIN_STARTUP = 2
MIN_COST_RATIO = 1e-12  # a floor under cost / baseline cost before its log
RESTART_RATE_RATIO = 1.5  # a traffic change this large starts a new study (serve's drift test uses the same)
RESTART_LENGTH_CHANGE = 0.25


class PeerStrategy(Strategy):
    """A library optimiser over integer axes — each knob's level index (GPU: 'freq'), then the batch index
    ('batch') — : `_ask` a point, `_tell` it its value."""

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        space = ctx.space
        self.names = [*("freq" if a.name == "gpu_mhz" else a.name for a in space.axes), "batch"]
        self.knob_levels = [a.levels for a in space.axes]
        self.batches = space.batch_sizes
        self.seed = ctx.seed if isinstance(ctx.seed, int) else int(ctx.seed.integers(2**31))
        self._scale: float | None = None
        self._pending: Config | None = None
        self._start()

    @property
    def startup_trials(self) -> int:
        """Random trials before the model leads: a third of the budget, within 2..10 (10 when open-ended)."""
        budget = self.ctx.budget
        return MAX_STARTUP if budget is None else min(MAX_STARTUP, max(MIN_STARTUP, budget // 3))

    @property
    def axes(self) -> tuple[int, ...]:
        """Levels on each axis: each knob's, then batch sizes."""
        return (*(len(levels) for levels in self.knob_levels), len(self.batches))

    def point(self, config: Config) -> tuple[int, ...]:
        """The integer point of `config`."""
        knobs = [
            levels.index(config.level(a.name)) for a, levels in zip(self.space.axes, self.knob_levels, strict=True)
        ]
        return (*knobs, self.batches.index(config.batch_size))

    def config(self, point: tuple[int, ...]) -> Config:
        """The config at an integer point."""
        knobs = {a.name: levels[int(i)] for a, levels, i in zip(self.space.axes, self.knob_levels, point, strict=False)}
        return Config.of(self.batches[int(point[-1])], **knobs)

    def propose(self) -> Config:
        """The library's next point (asked once; asked again only after it was told)."""
        if self._pending is None:
            self._pending = self.config(self._ask())
        return self._pending

    def observe(self, config: Config, obs: Observation) -> float | None:
        """Record the window and tell the library: the asked trial, or a trial of its own for any other config."""
        cost = super().observe(config, obs)
        if self._scale is None and cost is not None:
            self._scale = abs(cost) or 1.0
        value = None if cost is None else math.log(max(cost / (self._scale or 1.0), MIN_COST_RATIO))
        constraints = self._constraint_values(self.arms[config])
        self._tell(self.point(config), value, constraints, asked=config == self._pending)
        if config == self._pending:
            self._pending = None
        return cost

    def set_traffic(self, traffic: Traffic) -> None:
        """A material change (rate ×1.5, lengths ±25 %) starts a new study: costs measured then do not carry over.

        A refined estimate of the same traffic (or the first estimate after a placeholder) keeps the study: the
        windows were measured under the traffic that was there, whatever the estimate said."""
        before = self.ctx.traffic
        super().set_traffic(traffic)
        if before.arrivals == "saturated" or not _material(before, traffic):
            return
        self.arms.clear()
        self._pending = None
        self._start()

    def _constraint_values(self, stats: ConfigStats) -> list[float] | None:
        """Per given constraint, measured value / limit − 1 (≤ 0 is feasible); None without constraints."""
        limits = [(self.ctx.slo_p95_s, stats.p95_latency_s), (self.ctx.power_cap_w, stats.power_w)]
        given = [(limit, value) for limit, value in limits if limit is not None]
        if not given:
            return None
        return [math.inf if value is None else value / limit - 1.0 for limit, value in given]

    @abstractmethod
    def _start(self) -> None:
        """Open a fresh study / optimiser."""

    @abstractmethod
    def _ask(self) -> tuple[int, ...]:
        """The library's next point."""

    @abstractmethod
    def _tell(
        self, point: tuple[int, ...], value: float | None, constraints: list[float] | None, *, asked: bool
    ) -> None:
        """Tell the library the value at `point` (None: the window failed); `asked`: it is the pending ask."""


def _material(before: Traffic, after: Traffic) -> bool:
    rate = after.rate_per_s / before.rate_per_s
    lengths = (after.prompt_tokens / before.prompt_tokens, after.output_tokens / before.output_tokens)
    return max(rate, 1 / rate) >= RESTART_RATE_RATIO or any(abs(x - 1) >= RESTART_LENGTH_CHANGE for x in lengths)


def finite(values: list[float] | None) -> list[float] | None:
    """Constraint values a library can store (inf becomes a large violation)."""
    return None if values is None else [float(np.nan_to_num(v, posinf=1e6)) for v in values]
