"""`edpilot report`: what a tuning run measured, ranked by the objective it optimised, and its plots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from edpilot.cli.common import console, handle_errors, print_json
from edpilot.records import gain_pct
from edpilot.report import RunReport, load_report, write_plots
from edpilot.report.data import freq_text, spread
from edpilot.report.figure import config_text, shown_metric
from edpilot.runlog import read_run_log
from edpilot.space import knob_label, knob_order
from edpilot.stats import ConfigStats


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def gains(report: RunReport) -> dict[str, float | None]:
    """The chosen config's gain over the baseline on the optimised cost and on EDP, in percent."""
    best, base = report.stats(report.best), report.stats(report.baseline)
    if best is None or base is None:
        return {"objective_pct": None, "edp_pct": None}
    return {"objective_pct": gain_pct(best.cost, base.cost), "edp_pct": gain_pct(best.edp, base.edp)}


def _role(report: RunReport, s: ConfigStats) -> str:
    marks = (("[bold red]★[/]", report.best), ("base", report.baseline))
    return " ".join(name for name, config in marks if config == s.config)


def _width(header: str, cells: list[str]) -> int:
    """The narrowest a column may be: its header's longest word and its widest cell, so neither is cut."""
    return max([*map(len, header.split()), *(Text.from_markup(c).cell_len for c in cells), 1])


def report_table(report: RunReport, *, source: str) -> Table:
    """Every measured config, lowest optimised cost first, with the spread across its windows and how many there
    were; the chosen one (★) and the baseline marked. Fits 80 columns: headers wrap on words, never cut."""
    objective = report.objective
    has_cost = any(s.cost is not None for s in report.configs)
    metric = shown_metric(report)[1]
    measures: list[tuple[str, Callable[[ConfigStats], float | None], bool]] = [
        (report.objective_label, lambda p: p.cost, has_cost),
        ("energy (J/req)", lambda p: p.energy_per_request_j, report.has_energy and objective != "energy"),
        ("mean latency (s)", lambda p: p.mean_latency_s, objective != "latency" or not has_cost),
        ("p95 latency (s)", lambda p: p.p95_latency_s, True),
        ("EDP (J·s)", lambda p: p.edp, report.has_energy and (objective != "edp" or not has_cost)),
    ]
    shown = [(name, get) for name, get, show in measures if show]
    table = Table(
        title=f"{source}: configs measured, lowest {shown_metric(report)[0]} first\n{report.title()}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 0),
        show_edge=False,
    )
    others = sorted({n for s in report.configs for n, _ in s.config.knobs if n != "gpu_mhz"}, key=knob_order)
    knob_headers = [f"{knob_label(n)} MHz" for n in others]  # a column per knob besides the GPU's (EMC MHz)
    headers = [
        "",
        "MHz",
        *knob_headers,
        "batch",
        "windows",
        shown[0][0],
        "± sd",
        *(n for n, _ in shown[1:]),
        "keeps up",
    ]
    rows = []
    for s in report.configs:
        served = len(s.served)
        windows = str(served) + (f" [red]+{s.failed_windows} failed[/]" if s.failed_windows else "")
        keeps_up = "—" if not served else "yes" if s.keeps_up else "[red]no[/]"
        values = [_num(get(s)) for _, get in shown]
        sd = spread(s, metric)
        freq = freq_text(s.config.freq_mhz)
        levels = [freq_text(s.config.level(n)) for n in others]
        rows.append([_role(report, s), freq, *levels, str(s.config.batch_size), windows, values[0], _num(sd, 2)])
        rows[-1] += values[1:]
        rows[-1].append(keeps_up)
    for n, header in enumerate(headers):
        cells = [row[n] for row in rows]
        table.add_column(header, justify="right", overflow="fold", width=_width(header, cells))
    for row in rows:
        table.add_row(*row)
    table.caption = "chosen: ★ · baseline: base · ± sd: spread of the first measure across the config's windows"
    return table


def ranking_note(report: RunReport) -> str | None:
    """Why the chosen config is not the first row, when it is not: the windows behind it and behind those above."""
    ranked = [s for s in report.configs if s.served]
    chosen = report.stats(report.best)
    if chosen is None or chosen not in ranked or ranked[0] is chosen:
        return None
    above = ranked[: ranked.index(chosen)]
    listed = "; ".join(f"{config_text(s.config)}, {_windows(len(s.served))}" for s in above[:4])
    more = f"; and {len(above) - 4} more" if len(above) > 4 else ""
    sd = spread(chosen, shown_metric(report)[1])
    on = _windows(len(chosen.served)) + ("" if sd is None else f" (± sd {_num(sd, 2)})")
    return (
        f"note: the ★ ranks #{len(above) + 1} by measured mean: it was chosen on its {on} and the strategy's "
        f"estimate at this traffic. Above it: {listed}{more} — a mean of few windows can be low by chance."
    )


def _windows(count: int) -> str:
    return f"{count} window" + ("" if count == 1 else "s")


def summary_line(report: RunReport) -> str:
    """'chosen (…) vs baseline (…): <objective> N% lower, EDP M% lower', or why it cannot be said."""
    best, base = report.stats(report.best), report.stats(report.baseline)
    if report.best is None:
        return "the run log has no summary: the run did not finish, so no config was chosen"
    if best is None or base is None:
        return f"chosen {config_text(report.best)}; the run log has no measurement of it or of the baseline"
    g = gains(report)
    parts = [f"{report.objective_label} {_num(best.cost)} vs {_num(base.cost)}"]
    if g["objective_pct"] is not None:
        parts[-1] += f" ({g['objective_pct']:.1f}% lower)"
    if report.objective != "edp" and best.edp is not None and base.edp is not None:
        parts.append(f"EDP {_num(best.edp)} vs {_num(base.edp)} J·s ({g['edp_pct']:.1f}% lower)")
    stopped = "interrupted run, chosen from what it measured: " if report.interrupted else ""
    return f"{stopped}chosen {config_text(report.best)} vs baseline {config_text(report.baseline)}: " + "; ".join(parts)


@handle_errors
def report_command(
    run_log: Annotated[Path, typer.Argument(help="Run log written by `edpilot tune --output`.")],
    out: Annotated[
        Path | None, typer.Option(help="Folder for heatmap.png, convergence.png and pareto.png (latency.png).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the per-config table as JSON.")] = False,
) -> None:
    """Show every config a run measured, lowest optimised cost first (EDP beside it), with the spread across its
    windows (`sd` in --json: of the cost, or of EDP/latency when nothing was costed); --out writes the plots."""
    report = load_report(read_run_log(run_log))
    paths = write_plots(report, out) if out is not None else []
    if json_output:
        chosen, baseline = report.stats(report.best), report.stats(report.baseline)
        print_json(
            {
                "run": None if report.header is None else report.header.to_dict(),
                "objective": report.objective,
                "chosen": None if chosen is None else chosen.to_dict(),
                "baseline": None if baseline is None else baseline.to_dict(),
                "gain": gains(report),
                "configs": [{**s.to_dict(), "sd": spread(s, shown_metric(report)[1])} for s in report.configs],
                "plots": [str(p) for p in paths],
            }
        )
        return
    console.print(report_table(report, source=str(run_log)))
    note = ranking_note(report)
    if note:
        console.print(note, highlight=False)
    console.print(summary_line(report))
    for path in paths:
        console.print(f"wrote {path}")
