"""`baseline`: no search; always the baseline config (highest level, largest batch) that gains are quoted against."""

from __future__ import annotations

from edpilot.search.base import Strategy
from edpilot.space import Config


class BaselineStrategy(Strategy):
    """Serves the baseline and nothing else."""

    name = "baseline"

    def propose(self) -> Config:
        """The baseline config."""
        return self.ctx.baseline

    def best(self) -> Config:
        """The baseline config."""
        return self.ctx.baseline
