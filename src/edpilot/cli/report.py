"""`edpilot report`: a table and plots of what a tuning run tried."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edpilot.cli.common import console, handle_errors, print_json
from edpilot.report import config_points, write_plots
from edpilot.runlog import read_run_log


@handle_errors
def report_command(
    run_log: Annotated[Path, typer.Argument(help="Run log written by `edpilot tune --output`.")],
    out: Annotated[Path | None, typer.Option(help="Folder for heatmap.png, convergence.png, pareto.png.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the per-config table as JSON.")] = False,
) -> None:
    """Show every config a run measured (best EDP first) and, with --out, write the plots."""
    data = read_run_log(run_log)
    records = [r for r in (data.header, *(x.to_dict() for x in data.rounds), data.summary) if r is not None]
    points = config_points(records)
    paths = write_plots(records, out) if out is not None else []
    if json_output:
        print_json({"configs": [p.__dict__ for p in points], "plots": [str(p) for p in paths]})
        return
    table = Table(title=f"{run_log}: configs measured, best EDP first")
    for col in (
        "freq (MHz)",
        "batch",
        "windows",
        "energy/req (J)",
        "mean latency (s)",
        "EDP (J·s)",
        "keeps up",
    ):
        table.add_column(col, justify="right")
    for p in points:
        table.add_row(
            f"{p.freq_mhz:g}",
            str(p.batch_size),
            str(p.windows),
            f"{p.energy_per_request_j:.3f}",
            f"{p.mean_latency_s:.3f}",
            f"{p.edp:.3f}",
            "yes" if p.keeps_up else "[red]no[/]",
        )
    console.print(table)
    for path in paths:
        console.print(f"wrote {path}")
