"""Reports from run logs: the per-config table sorted by the optimised objective, and PNG plots.

`load_report(read_run_log(path))` groups the checked rounds by config into the core's `ConfigStats` and ranks
them (the records raise ConfigError on a line of the wrong shape); `write_plots(report, folder)` writes the
plots (needs `edpilot[plot]`).
"""

from edpilot.report.data import RunReport, incumbent_means, load_report, objective_label, pareto_front, spread
from edpilot.report.plots import write_plots

__all__ = ["RunReport", "incumbent_means", "load_report", "objective_label", "pareto_front", "spread", "write_plots"]
