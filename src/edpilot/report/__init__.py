"""Reports from run logs: the per-config table sorted by the optimised objective, and PNG plots.

`load_report(records)` checks and aggregates the records `edpilot.runlog.read_run_log` returns (ConfigError on
a record of the wrong shape); `write_plots(report, folder)` writes the plots (needs `edpilot[plot]`).
"""

from edpilot.report.data import (
    ConfigPoint,
    RoundPoint,
    RunInfo,
    RunReport,
    incumbent_cost,
    load_report,
    pareto_front,
)
from edpilot.report.fields import finite_or_none, objective_label
from edpilot.report.plots import write_plots

__all__ = [
    "ConfigPoint",
    "RoundPoint",
    "RunInfo",
    "RunReport",
    "finite_or_none",
    "incumbent_cost",
    "load_report",
    "objective_label",
    "pareto_front",
    "write_plots",
]
