"""Search strategies over the grid of named knob levels × batch size, behind one ask/tell protocol.

    strategy = make_strategy("camel", SearchContext(space=..., objective=..., baseline=..., traffic=...))
    config = strategy.propose(); ...; strategy.observe(config, observation); strategy.best()

A strategy is named three ways: a built-in (`STRATEGIES`: edpilot, baseline, grid, random, camel), a reference
peer from the `peers` extra (`PEERS`: optuna-tpe, optuna-gp, skopt; the real libraries behind the same
protocol), or an outside class as `module:Class` / `path/to/file.py:Class` (a subclass of `Strategy`).
Unknown names, a peer whose library is missing and an outside spec that does not load raise ConfigError
with one line that says what to do.
"""

from __future__ import annotations

from edpilot.errors import ConfigError
from edpilot.search.base import SearchContext, Strategy
from edpilot.search.baseline import BaselineStrategy
from edpilot.search.camel import CamelStrategy
from edpilot.search.edpilot import EdpilotStrategy
from edpilot.search.grid import GridStrategy
from edpilot.search.outside import load_class
from edpilot.search.random import RandomStrategy

__all__ = [
    "DEFAULT_STRATEGY",
    "PEERS",
    "STRATEGIES",
    "SearchContext",
    "Strategy",
    "make_strategy",
    "strategy_class",
    "strategy_names",
]

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (EdpilotStrategy, BaselineStrategy, GridStrategy, RandomStrategy, CamelStrategy)
}
PEERS: dict[str, str] = {
    "optuna-tpe": "edpilot.search.peers.optuna_tpe:OptunaTpeStrategy",
    "optuna-gp": "edpilot.search.peers.optuna_gp:OptunaGpStrategy",
    "skopt": "edpilot.search.peers.skopt_gp:SkoptGpStrategy",
}
DEFAULT_STRATEGY = "edpilot"


def make_strategy(name: str, ctx: SearchContext) -> Strategy:
    """Build the strategy `name` (built-in, peer or module:Class) for `ctx`."""
    return strategy_class(name)(ctx)


def strategy_class(name: str) -> type[Strategy]:
    """The class behind `name`, or ConfigError naming what exists (or what to install)."""
    if name in STRATEGIES:
        return STRATEGIES[name]
    if name in PEERS:
        try:
            return load_class(PEERS[name])
        except ConfigError as exc:
            raise ConfigError(
                f"strategy {name!r} needs the peers extra: pip install 'edpilot[peers]' ({exc})"
            ) from None
    if ":" in name:
        return load_class(name)
    raise ConfigError(f"unknown strategy {name!r}; choose one of: {', '.join(strategy_names())}, or module:Class")


def strategy_names() -> list[str]:
    """Every strategy that can be named without a module path: the built-ins, then the peers."""
    return [*STRATEGIES, *PEERS]
