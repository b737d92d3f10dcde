"""Reports from run logs: per-config aggregates, the Pareto front, and PNG plots (needs `edpilot[plot]`)."""

from edpilot.report.data import ConfigPoint, config_points, incumbent_edp, pareto_front
from edpilot.report.plots import write_plots

__all__ = ["ConfigPoint", "config_points", "incumbent_edp", "pareto_front", "write_plots"]
