"""`edpilot bench`: how fast the tuning loop runs on the simulator."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from edpilot.bench import tune_speed
from edpilot.cli.common import console, handle_errors, print_json
from edpilot.cli.options import JsonOpt
from edpilot.errors import ConfigError
from edpilot.search import DEFAULT_STRATEGY, STRATEGIES, strategy_class


@handle_errors
def bench_command(
    rounds: Annotated[int, typer.Option(help="Rounds per simulated tuning run.")] = 100,
    strategy: Annotated[str, typer.Option(help=f"Strategy: {', '.join(STRATEGIES)}.")] = DEFAULT_STRATEGY,
    repeats: Annotated[int, typer.Option(help="Runs to time.")] = 5,
    json_output: JsonOpt = False,
) -> None:
    """Time a simulated tuning run and one strategy decision (targets: < 2 s per 100 rounds, < 1 ms per decision)."""
    strategy_class(strategy)
    if rounds < 1 or repeats < 1:
        raise ConfigError("--rounds and --repeats must be >= 1")
    result = tune_speed(rounds=rounds, strategy=strategy, repeats=repeats)
    if json_output:
        print_json(result)
        return
    table = Table(title="edpilot bench: tuning loop on the simulator")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
