"""The heatmap: the optimised cost of every measured config over the GPU level × batch grid, log colour scale;
one panel per memory clock level (small multiples, one colour scale) when the run searched it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edpilot.report.data import RunReport, freq_text, spread
from edpilot.report.figure import (
    baseline_label,
    chosen_label,
    config_value,
    finish,
    plain_ticks,
    pyplot,
    shown_metric,
)
from edpilot.space import DECODE_PREFIX, Config
from edpilot.stats import ConfigStats

UNMEASURED = "0.93"


PANEL_KNOB = "emc_mhz"  # one panel per level of this knob (small multiples), GPU × batch inside each


def panel_levels(report: RunReport) -> list[float | None]:
    """The memory clock levels to draw a panel each, ascending; [None] when the run did not search it."""
    grid = report.header.axes.get(PANEL_KNOB, []) if report.header else []
    seen = {level for s in report.configs if (level := s.config.level(PANEL_KNOB)) is not None}
    levels: list[float | None] = [*sorted({float(v) for v in grid if v is not None} | seen)]
    return levels or [None]


def cost_grid(report: RunReport, panel: float | None = None) -> tuple[list[float | None], list[int], np.ndarray]:
    """Frequencies (rows; [None] without a clock knob), batch sizes (columns) and the shown metric per cell, of
    the configs at memory clock `panel` (None: a run that did not search it).

    A cell is NaN where its config was not measured or every window there failed.
    """
    _, metric = shown_metric(report)
    grid_freqs = report.header.freqs_mhz if report.header else []
    grid_batches = report.header.batch_sizes if report.header else []
    freqs = sorted(set(grid_freqs) | {s.config.freq_mhz for s in report.configs}, key=lambda f: (f is not None, f))
    batches = sorted(set(grid_batches) | {s.config.batch_size for s in report.configs})
    grid = np.full((len(freqs), len(batches)), np.nan)
    for s in report.configs:
        value = config_value(s, metric)
        if value is not None and s.config.level(PANEL_KNOB) == panel:
            grid[freqs.index(s.config.freq_mhz), batches.index(s.config.batch_size)] = value
    return freqs, batches, grid


def cell_of(
    config: Config | None, freqs: list[float | None], batches: list[int], panel: float | None = None
) -> tuple[int, int] | None:
    """(row, column) of a config in the grid of panel `panel`, or None when it is not on it."""
    if config is None or config.freq_mhz not in freqs or config.batch_size not in batches:
        return None
    if config.level(PANEL_KNOB) != panel:
        return None
    return freqs.index(config.freq_mhz), batches.index(config.batch_size)


KNOB_TITLES = {"gpu_mhz": "GPU clock", "emc_mhz": "memory clock", "cpu_mhz": "CPU clock"}


def axis_label(name: str) -> str:
    """An axis label from a knob's name and unit: 'GPU clock (MHz)', 'memory clock (MHz)', 'decode GPU clock (MHz)'."""
    base = name.removeprefix(DECODE_PREFIX)
    title = KNOB_TITLES.get(base, base)
    title = f"decode {title}" if name.startswith(DECODE_PREFIX) else title
    return f"{title} (MHz)" if base.endswith("_mhz") else title


def colour_norm(values: np.ndarray) -> Any:
    """A log colour scale over the measured values; linear only where one is <= 0 or all are equal."""
    from matplotlib.colors import LogNorm, Normalize

    lo, hi = float(np.min(values)), float(np.max(values))
    if 0 < lo < hi:
        return LogNorm(vmin=lo, vmax=hi)
    return Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1)


def _box(plt: Any, ax: Any, cell: tuple[int, int], *, inset: float, **style: Any) -> None:
    i, j = cell
    size = 1 - 2 * inset
    ax.add_patch(plt.Rectangle((j - 0.5 + inset, i - 0.5 + inset), size, size, fill=False, **style))


def _spread_text(stats: ConfigStats | None, metric: str) -> str:
    """'±0.057 ×22': the spread and the count of a config's windows, where it was measured more than once."""
    sd = None if stats is None else spread(stats, metric)
    return "" if sd is None or stats is None else f"±{sd:.2g} ×{len(stats.served)}"


def plot_heatmap(report: RunReport, path: Path) -> None:
    """The shown metric per config on a log colour scale, with the spread and count of its windows where there are
    several; chosen boxed red, baseline dashed; unmeasured grey. A run that searched the memory clock gets one
    panel per memory clock level (ascending, left to right, one colour scale)."""
    plt = pyplot()
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    label, metric = shown_metric(report)
    panels = panel_levels(report)
    grids = {panel: cost_grid(report, panel) for panel in panels}
    freqs, batches, _ = grids[panels[0]]
    measured = np.concatenate([g[~np.isnan(g)] for _, _, g in grids.values()])
    width = max(7.0, 2.2 + 0.95 * len(batches)) if len(panels) == 1 else 1.6 + (0.7 + 0.6 * len(batches)) * len(panels)
    ratios = [1.0] * len(panels) + ([] if len(panels) == 1 else [0.04])  # small multiples: a colour bar axis
    fig, axes = plt.subplots(
        1, len(ratios), figsize=(width, 2.9 + 0.5 * len(freqs)), squeeze=False, gridspec_kw={"width_ratios": ratios}
    )
    cmap = plt.get_cmap("viridis_r").with_extremes(bad=UNMEASURED)
    norm = colour_norm(measured) if measured.size else None
    im = None
    for ax, panel in zip(axes[0], panels, strict=False):
        im = _panel(plt, ax, report, panel, grids[panel][2], freqs=freqs, batches=batches, cmap=cmap, norm=norm)
        if panel is not None:
            ax.set_xlabel(f"batch size\n{KNOB_TITLES[PANEL_KNOB]} {panel:g} MHz", fontsize=9)
        if ax is not axes[0][0]:
            ax.set_yticklabels([])
    axes[0][0].set_ylabel(axis_label("gpu_mhz"))
    handles = []
    if any(cell_of(report.baseline, freqs, batches, panel) for panel in panels):
        handles.append(Line2D([], [], color="black", linewidth=2, linestyle="--", label=baseline_label(report)))
    if any(cell_of(report.best, freqs, batches, panel) for panel in panels):
        handles.append(Line2D([], [], color="#d62728", linewidth=3, label=chosen_label(report)))
    handles.append(Line2D([], [], marker="s", color=UNMEASURED, linestyle="", markersize=10, label="not measured"))
    if any(_spread_text(s, metric) for s in report.configs):
        handles.append(Line2D([], [], linestyle="", label="±sd across windows ×windows measured"))
    if norm is not None and im is not None:
        where = {"ax": axes[0][0]} if len(panels) == 1 else {"cax": axes[0][-1]}
        bar = fig.colorbar(im, **where, label=f"{label}, lower is better")
        if isinstance(norm, LogNorm) and norm.vmin is not None and norm.vmax is not None:
            bar.set_ticks(np.geomspace(norm.vmin, norm.vmax, 6))
            plain_ticks(bar.ax.yaxis)
            bar.ax.yaxis.set_minor_formatter("")
    finish(fig, axes[0][0], path, heading=f"{label} per config", report=report, legend_handles=handles)


def _panel(
    plt: Any,
    ax: Any,
    report: RunReport,
    panel: float | None,
    grid: np.ndarray,
    *,
    freqs: list[float | None],
    batches: list[int],
    cmap: Any,
    norm: Any,
) -> Any:
    """One heatmap (GPU level × batch) of the configs at memory clock `panel`; returns the image."""
    _, metric = shown_metric(report)
    im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(len(batches)), [str(b) for b in batches])
    ax.set_yticks(range(len(freqs)), [freq_text(f) for f in freqs])
    ax.set_xlabel("batch size")
    ax.set_xticks(np.arange(-0.5, len(batches)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(freqs)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    spreads = {cell_of(s.config, freqs, batches, panel): s for s in report.configs}
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v) and norm is not None:
            r, g, b, _ = cmap(norm(v))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            extra = _spread_text(spreads.get((i, j)), metric)
            ax.text(j, i + (0.13 if extra else 0), f"{v:.3g}", ha="center", va="center", fontsize=8, color=ink)
            if extra:
                ax.text(j, i - 0.2, extra, ha="center", va="center", fontsize=6.5, color=ink)
    for s in report.configs:
        cell = cell_of(s.config, freqs, batches, panel) if not s.served else None
        if cell is not None:
            ax.text(cell[1], cell[0], "failed", ha="center", va="center", fontsize=7, color="#b00000")
    best_cell = cell_of(report.best, freqs, batches, panel)
    base_cell = cell_of(report.baseline, freqs, batches, panel)
    if base_cell is not None:
        inset = 0.1 if base_cell == best_cell else 0.04
        _box(plt, ax, base_cell, inset=inset, edgecolor="black", linewidth=3.5)
        _box(plt, ax, base_cell, inset=inset, edgecolor="white", linewidth=2, linestyle=(0, (3, 2)))
    if best_cell is not None:
        _box(plt, ax, best_cell, inset=0.02, edgecolor="#d62728", linewidth=3)
    return im
