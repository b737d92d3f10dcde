"""`grid`: measure every config once (grid order), then serve the best one."""

from __future__ import annotations

from edpilot.search.base import Strategy
from edpilot.space import Config


class GridStrategy(Strategy):
    """Exhaustive search over the grid, then exploitation of the incumbent."""

    name = "grid"

    def propose(self) -> Config:
        """The next unmeasured config, or the best one once all are measured."""
        todo = self.unobserved()
        return todo[0] if todo else self.best()
