"""Search strategies over the (frequency, batch size) grid, behind one ask/tell protocol.

    strategy = make_strategy("camel", SearchContext(space=..., objective=..., baseline=..., traffic=...))
    config = strategy.propose(); ...; strategy.observe(config, observation); strategy.best()

`STRATEGIES` maps each name to its class, so the CLI lists what exists. Unknown names raise ConfigError.
"""

from __future__ import annotations

from edpilot.errors import ConfigError
from edpilot.search.base import SearchContext, Strategy
from edpilot.search.baseline import BaselineStrategy
from edpilot.search.camel import CamelStrategy
from edpilot.search.edpilot import EdpilotStrategy
from edpilot.search.grid import GridStrategy
from edpilot.search.random import RandomStrategy

__all__ = ["DEFAULT_STRATEGY", "STRATEGIES", "SearchContext", "Strategy", "make_strategy"]

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (EdpilotStrategy, BaselineStrategy, GridStrategy, RandomStrategy, CamelStrategy)
}
DEFAULT_STRATEGY = "edpilot"


def make_strategy(name: str, ctx: SearchContext) -> Strategy:
    """Build the strategy registered as `name`."""
    return strategy_class(name)(ctx)


def strategy_class(name: str) -> type[Strategy]:
    """The class registered as `name`, or ConfigError listing the names."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}") from None
