"""PNG plots of a run log: the cost heatmap, search progress, and energy vs latency (or latency alone).

Every plot names the run (device, model, arrival rate, objective, energy scope) and marks the chosen
config and the baseline. Needs matplotlib (`pip install 'edpilot[plot]'`).
"""

from __future__ import annotations

from pathlib import Path

from edpilot.errors import ConfigError
from edpilot.report.data import RunReport
from edpilot.report.figure import pyplot
from edpilot.report.heatmap import plot_heatmap
from edpilot.report.scatter import plot_convergence, plot_latency, plot_pareto


def write_plots(report: RunReport, out_dir: Path) -> list[Path]:
    """Write heatmap.png, convergence.png and pareto.png (latency.png without energy) into `out_dir`."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a folder: name a folder for the plots")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the plot folder {out_dir}: {exc.strerror or exc}") from None
    pyplot()
    third = ("pareto.png", plot_pareto) if report.has_energy else ("latency.png", plot_latency)
    plots = [("heatmap.png", plot_heatmap), ("convergence.png", plot_convergence), third]
    paths = []
    for name, plot in plots:
        plot(report, out_dir / name)
        paths.append(out_dir / name)
    return paths
