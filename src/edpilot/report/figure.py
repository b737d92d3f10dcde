"""What every plot shares: matplotlib on Agg, the run's title line, and the chosen/baseline markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from edpilot.errors import ConfigError
from edpilot.records import RoundRecord
from edpilot.report.data import RunReport
from edpilot.space import Config
from edpilot.stats import ConfigStats

CHOSEN_STYLE: dict[str, Any] = {
    "marker": "*",
    "s": 260,
    "color": "#d62728",
    "edgecolors": "black",
    "linewidths": 0.8,
    "zorder": 5,
}
BASELINE_STYLE: dict[str, Any] = {
    "marker": "s",
    "s": 130,
    "color": "none",
    "edgecolors": "black",
    "linewidths": 2.2,
    "zorder": 4,
}


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or ConfigError naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'edpilot[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def config_text(config: Config | None) -> str:
    """'(816 MHz, batch 20)', '(batch 4)' without a clock knob, or '?' when the run log does not say."""
    return "?" if config is None else str(config)


def chosen_label(report: RunReport) -> str:
    """Legend text of the chosen config."""
    return f"chosen {config_text(report.best)}"


def baseline_label(report: RunReport) -> str:
    """Legend text of the baseline config."""
    return f"baseline {config_text(report.baseline)}"


Metric = Literal["cost", "edp", "mean_latency_s"]


def shown_metric(report: RunReport) -> tuple[str, Metric]:
    """The label and name of what the plots colour and rank by: the optimised cost, else EDP, else latency."""
    if any(s.cost is not None for s in report.configs):
        return report.objective_label, "cost"
    if report.has_energy:
        return "EDP (J·s)", "edp"
    return "mean latency (s)", "mean_latency_s"


def config_value(stats: ConfigStats, metric: Metric) -> float | None:
    """A config's mean of `metric` (None: not measured)."""
    value: float | None = getattr(stats, metric)
    return value


def round_value(record: RoundRecord, metric: Metric) -> float | None:
    """One round's `metric` (None: not measured, or the round failed)."""
    if record.obs.failed:
        return None
    return record.cost if metric == "cost" else getattr(record.obs, metric)


LOG_SCALE_MIN_RATIO = 5.0  # a cost axis goes logarithmic when its largest value is this many times its smallest


def wants_log(values: Any) -> bool:
    """Whether values (all > 0) span enough to be read on a log axis."""
    values = [v for v in values if v is not None]
    return bool(values) and min(values) > 0 and max(values) >= LOG_SCALE_MIN_RATIO * min(values)


def plain_ticks(axis: Any) -> None:
    """Label a log axis with plain numbers (20, 50, 100), not powers of ten."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain)


def tick_at(axis: Any, value: float, name: str) -> None:
    """Add a labelled major tick at `value` ('14.98' over 'baseline' on x, 'baseline 135.6' on y) beside the axis's
    own ticks, dropping those that would crowd it (within 8 % of the axis span, on the scale it shows)."""
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter

    axis.axes.autoscale_view()
    lo, hi = sorted(axis.get_view_interval())
    log = axis.get_scale() == "log"

    def where(v: float) -> float:
        return float(np.log10(v)) if log else v

    span = (where(hi) - where(lo)) or 1.0
    own = sorted(
        t for t in [*axis.get_majorticklocs(), *axis.get_minorticklocs()] if lo <= t <= hi and t > 0 or not log
    )
    kept: list[float] = []
    for t in own:  # on a log axis the labelled minor ticks (20, 30, ...) count too; thin them so none crowd
        if lo <= t <= hi and all(abs(where(t) - where(k)) > 0.08 * span for k in [*kept, value]):
            kept.append(t)
    axis.set_major_locator(FixedLocator([*kept, value]))
    axis.set_minor_formatter("")

    def mark(v: float) -> str:
        return f"{v:.4g}\n{name}" if axis.axis_name == "x" else f"{name} {v:.4g}"

    axis.set_major_formatter(FuncFormatter(lambda v, _: mark(v) if v == value else f"{v:.3g}"))


def finish(fig: Any, ax: Any, path: Path, *, heading: str, report: RunReport, legend_handles: Any = None) -> None:
    """Title the plot with `heading` and the run's line, put `legend_handles` under it, save it as PNG, close it."""
    layout(fig, ax, heading=heading, report=report, legend_handles=legend_handles)
    save(fig, path)


FOOTNOTE_IN = 0.22  # room kept under the legend for one line of footnote


def layout(
    fig: Any, ax: Any, *, heading: str, report: RunReport, legend_handles: Any = None, footnote_room: bool = False
) -> None:
    """Title the plot, put the legend under it (and keep a line for a footnote), and fix the layout."""
    fig.suptitle(heading[:1].upper() + heading[1:], fontsize=12, fontweight="bold")
    ax.set_title(report.title(), fontsize=8, color="0.25")
    bottom = FOOTNOTE_IN / fig.get_figheight() if footnote_room else 0.0
    if legend_handles:
        rows = -(-len(legend_handles) // 3)
        fig.legend(
            handles=legend_handles, loc="lower center", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.5, bottom)
        )
        bottom += (0.1 + 0.19 * rows) / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, 1))


def save(fig: Any, path: Path) -> None:
    """Save the figure as PNG and close it; ConfigError when the file cannot be written."""
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise ConfigError(f"cannot write plot {path}: {exc.strerror or exc}") from None
    finally:
        pyplot().close(fig)


def mark_points(ax: Any, report: RunReport, x_of: Any, y_of: Any) -> None:
    """Draw the chosen config (star) and the baseline (square) at (x_of(p), y_of(p)) where both are known."""
    for config, style, label in (
        (report.baseline, BASELINE_STYLE, baseline_label(report)),
        (report.best, CHOSEN_STYLE, chosen_label(report)),
    ):
        s = report.stats(config)
        if s is not None and x_of(s) is not None and y_of(s) is not None:
            ax.scatter([x_of(s)], [y_of(s)], label=label, **style)
