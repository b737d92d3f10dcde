"""`random`: measure configs in a random order without repeats, then serve the best one."""

from __future__ import annotations

from edpilot.search.base import Strategy
from edpilot.space import Config


class RandomStrategy(Strategy):
    """Uniform random search without replacement, then exploitation of the incumbent."""

    name = "random"

    def propose(self) -> Config:
        """A random unmeasured config, or the best one once all are measured."""
        todo = self.unobserved()
        return todo[self.rng.integers(len(todo))] if todo else self.best()
