"""`edpilot report`: what a tuning run measured, ranked by the objective it optimised, and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edpilot.cli.common import console, handle_errors, print_json
from edpilot.errors import ConfigError
from edpilot.report import ConfigPoint, RunReport, finite_or_none, load_report, write_plots
from edpilot.report.figure import config_text, shown_metric
from edpilot.runlog import read_run_log


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _gain_pct(best: float | None, base: float | None) -> float | None:
    """How much lower `best` is than `base`, in percent (None where either is missing or base is 0)."""
    if best is None or base is None or base == 0:
        return None
    return 100.0 * (1.0 - best / base)


def gains(report: RunReport) -> dict[str, float | None]:
    """The chosen config's gain over the baseline on the optimised cost and on EDP, in percent."""
    best, base = report.point(report.best), report.point(report.baseline)
    if best is None or base is None:
        return {"objective_pct": None, "edp_pct": None}
    return {"objective_pct": _gain_pct(best.cost, base.cost), "edp_pct": _gain_pct(best.edp, base.edp)}


def _role(report: RunReport, p: ConfigPoint) -> str:
    marks = (("[bold red]★ chosen[/]", report.best), ("baseline", report.baseline))
    return ", ".join(name for name, key in marks if key == p.key)


def report_table(report: RunReport, *, source: str) -> Table:
    """Every measured config, lowest optimised cost first, the chosen one and the baseline marked."""
    objective = report.info.objective
    has_cost = any(p.cost is not None for p in report.points)
    measures = [
        (report.info.objective_label, lambda p: p.cost, has_cost),
        ("energy/req (J)", lambda p: p.energy_per_request_j, report.has_energy and objective != "energy"),
        ("mean latency (s)", lambda p: p.mean_latency_s, objective != "latency"),
        ("p95 latency (s)", lambda p: p.p95_latency_s, True),
        ("EDP (J·s)", lambda p: p.edp, report.has_energy and (objective != "edp" or not has_cost)),
    ]
    shown = [(name, get) for name, get, show in measures if show]
    run = report.info.title(has_energy=report.has_energy)
    table = Table(title=f"{source}: configs measured, lowest {shown_metric(report)[0]} first\n{run}")
    for col in ["", "freq (MHz)", "batch", "windows", *(name for name, _ in shown), "keeps up"]:
        table.add_column(col, justify="right")
    for p in report.points:
        windows = str(p.windows) + (f" [red]+{p.failed_windows} failed[/]" if p.failed_windows else "")
        keeps_up = "—" if p.windows == 0 else "yes" if p.keeps_up else "[red]no[/]"
        values = [_num(get(p)) for _, get in shown]
        table.add_row(_role(report, p), f"{p.freq_mhz:g}", str(p.batch_size), windows, *values, keeps_up)
    return table


def summary_line(report: RunReport) -> str:
    """'chosen (…) vs baseline (…): <objective> N% lower, EDP M% lower', or why it cannot be said."""
    best, base = report.point(report.best), report.point(report.baseline)
    if report.best is None:
        return "the run log has no summary: the run did not finish, so no config was chosen"
    if best is None or base is None:
        return f"chosen {config_text(report.best)}; the run log has no measurement of it or of the baseline"
    g = gains(report)
    parts = [f"{report.info.objective_label} {_num(best.cost)} vs {_num(base.cost)}"]
    if g["objective_pct"] is not None:
        parts[-1] += f" ({g['objective_pct']:.1f}% lower)"
    if report.info.objective != "edp" and best.edp is not None and base.edp is not None:
        parts.append(f"EDP {_num(best.edp)} vs {_num(base.edp)} J·s ({g['edp_pct']:.1f}% lower)")
    return f"chosen {config_text(report.best)} vs baseline {config_text(report.baseline)}: " + "; ".join(parts)


def _read(run_log: Path) -> RunReport:
    try:
        return load_report(read_run_log(run_log))
    except RecursionError:
        raise ConfigError(f"{run_log}: a record is nested too deeply to be a run-log record") from None
    except ValueError as exc:  # json's own limits (e.g. an integer of more than 4300 digits)
        raise ConfigError(f"{run_log}: not a run log ({exc})") from None


@handle_errors
def report_command(
    run_log: Annotated[Path, typer.Argument(help="Run log written by `edpilot tune --output`.")],
    out: Annotated[
        Path | None, typer.Option(help="Folder for heatmap.png, convergence.png and pareto.png (latency.png).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the per-config table as JSON.")] = False,
) -> None:
    """Show every config a run measured, lowest optimised cost first (EDP beside it); --out writes the plots."""
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder: name a folder for the plots")
    report = _read(run_log)
    paths = write_plots(report, out) if out is not None else []
    if json_output:
        info = report.info
        print_json(
            finite_or_none(
                {
                    "run": {k: getattr(info, k) for k in info.__dataclass_fields__},
                    "objective": info.objective,
                    "chosen": report.point(report.best).to_dict() if report.point(report.best) else None,
                    "baseline": report.point(report.baseline).to_dict() if report.point(report.baseline) else None,
                    "gain": gains(report),
                    "configs": [p.to_dict() for p in report.points],
                    "plots": [str(p) for p in paths],
                }
            )
        )
        return
    console.print(report_table(report, source=str(run_log)))
    console.print(summary_line(report))
    for path in paths:
        console.print(f"wrote {path}")
