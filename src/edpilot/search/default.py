"""`default`: always the baseline (highest frequency, largest batch), what every gain is quoted against."""

from __future__ import annotations

from edpilot.search.base import Strategy
from edpilot.space import Config


class DefaultStrategy(Strategy):
    """Serves the baseline and nothing else."""

    name = "default"

    def propose(self) -> Config:
        """The baseline config."""
        return self.space.baseline()

    def best(self) -> Config:
        """The baseline config."""
        return self.space.baseline()
