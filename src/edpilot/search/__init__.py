"""Search strategies over the (frequency, batch size) grid, behind one ask/tell protocol.

    strategy = make_strategy("camel", space, cost_fn=..., seed=0)
    config = strategy.propose(); ...; strategy.observe(config, observation); strategy.best()

`STRATEGIES` maps each name to its class, so the CLI lists what exists. Unknown names raise ConfigError.
"""

from __future__ import annotations

import numpy as np

from edpilot.errors import ConfigError
from edpilot.search.base import CostFn, Strategy
from edpilot.search.camel import CamelStrategy
from edpilot.search.default import DefaultStrategy
from edpilot.search.grid import GridStrategy
from edpilot.search.random import RandomStrategy
from edpilot.space import ConfigSpace

__all__ = ["STRATEGIES", "CostFn", "Strategy", "make_strategy"]

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (DefaultStrategy, GridStrategy, RandomStrategy, CamelStrategy)
}


def make_strategy(name: str, space: ConfigSpace, *, cost_fn: CostFn, seed: int | np.random.Generator = 0) -> Strategy:
    """Build the strategy registered as `name`."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}") from None
    return cls(space, cost_fn=cost_fn, seed=seed)
