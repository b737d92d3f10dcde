"""`edpilot bench`: how fast the tuning loop runs on the simulator, or (`--sweep`) how well each strategy searches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edpilot.bench import STRATEGIES as SWEEP_STRATEGIES
from edpilot.bench import default_scenarios, holdout_scenarios, run_sweep, tune_speed, write_report
from edpilot.bench.oracle_file import oracle_scenarios, read_oracle_file
from edpilot.bench.sweep import grid_of
from edpilot.cli.common import console, handle_errors, print_json
from edpilot.cli.options import ConfigFileOpt, JsonOpt, split_list
from edpilot.errors import ConfigError
from edpilot.limits import bounded
from edpilot.search import DEFAULT_STRATEGY, strategy_class, strategy_names


@handle_errors
def bench_command(
    config_file: ConfigFileOpt = None,
    rounds: Annotated[int, typer.Option(help="Rounds per simulated tuning run.")] = 100,
    strategy: Annotated[
        str, typer.Option(help=f"Timing: strategy, {', '.join(strategy_names())} or module:Class.")
    ] = DEFAULT_STRATEGY,
    repeats: Annotated[int, typer.Option(help="Runs to time.")] = 5,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Compare strategies × scenarios × seeds against the exact oracle.")
    ] = False,
    output: Annotated[Path, typer.Option(help="--sweep: folder for runs.csv, summary.md, curves.png.")] = Path(
        "bench-out"
    ),
    strategies: Annotated[
        str | None,
        typer.Option(
            help=f"--sweep: comma list of strategies (default {','.join(SWEEP_STRATEGIES)}); names or module:Class."
        ),
    ] = None,
    oracle_file: Annotated[
        Path | None,
        typer.Option(
            help="--sweep: score the scenarios this JSON names by its per-config true costs (docs/benchmarks.md)."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="--sweep: seeds per strategy and scenario.")] = 10,
    budget: Annotated[
        int | None, typer.Option(help="--sweep: search rounds on every scenario (default min(15, grid / 4)).")
    ] = None,
    workers: Annotated[int, typer.Option(help="--sweep: worker processes.")] = 2,
    profile: Annotated[
        list[Path] | None, typer.Option(help="--sweep: also benchmark on this profile table (repeatable).")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="--sweep: fewer arrival rates (a smoke run).")] = False,
    holdout: Annotated[
        bool,
        typer.Option(
            "--holdout",
            help="--sweep: score on the held-out scenarios instead (rates, objectives and hard surfaces written "
            "after the strategies' settings were chosen: docs/benchmarks.md says which later choices saw them).",
        ),
    ] = False,
    device: Annotated[
        str, typer.Option(help="Timing: the simulated board, sim or sim:BOARD (orin-agx-32gb, orin-agx-64gb).")
    ] = "sim",
    arrivals: Annotated[str, typer.Option(help="Timing: arrival process, uniform or poisson.")] = "uniform",
    freqs: Annotated[str | None, typer.Option(help="Timing: GPU levels of the grid (comma list or 'all').")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Time a simulated tuning run and one decision (targets: < 2 s per 100 rounds, < 1 ms per decision);
    with --sweep, score every strategy against the oracle of many scenarios."""
    if not sweep and (strategies is not None or oracle_file is not None or budget is not None):
        raise ConfigError("--strategies, --oracle-file and --budget go with --sweep")
    if sweep:
        bounded(seeds, "seeds", "--seeds")
        bounded(workers, "workers", "--workers")
        if budget is not None:
            bounded(budget, "budget", "--budget")
        if holdout and (quick or profile):
            raise ConfigError("--holdout runs its own scenarios: drop --quick and --profile")
        names = SWEEP_STRATEGIES if strategies is None else tuple(dict.fromkeys(split_list(strategies) or []))
        if not names:
            raise ConfigError("--strategies is empty: give a comma list such as edpilot,camel,optuna-tpe")
        for name in names:
            strategy_class(name)
        scenarios = (
            holdout_scenarios() if holdout else default_scenarios(profiles=[str(p) for p in profile or []], quick=quick)
        )
        oracle = None if oracle_file is None else read_oracle_file(oracle_file)
        if oracle is not None:
            scenarios = oracle_scenarios(scenarios, oracle, grid_of=grid_of)
        results = run_sweep(scenarios, strategies=names, seeds=seeds, workers=workers, oracle=oracle, budget=budget)
        paths = write_report(results, output)
        if json_output:
            print_json({k: str(v) for k, v in paths.items()})
            return
        console.print(paths["markdown"].read_text(encoding="utf-8"))
        console.print(f"wrote {', '.join(str(p) for p in paths.values())}")
        return
    strategy_class(strategy)
    bounded(rounds, "budget", "--rounds")
    bounded(repeats, "repeats", "--repeats")
    if device != "sim" and not device.startswith("sim:"):
        raise ConfigError(f"--device {device}: the timing runs on the simulator only (sim or sim:BOARD)")
    if arrivals not in ("uniform", "poisson"):
        raise ConfigError(f"--arrivals {arrivals}: the timing takes uniform or poisson")
    result = tune_speed(
        rounds=rounds, strategy=strategy, repeats=repeats, device=device, arrivals=arrivals, freqs=freqs
    )
    if json_output:
        print_json(result)
        return
    table = Table(title="edpilot bench: tuning loop on the simulator")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
