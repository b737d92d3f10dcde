"""The heatmap: the optimised cost of every measured config over the frequency × batch grid, log colour scale."""

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
from edpilot.space import Config
from edpilot.stats import ConfigStats

UNMEASURED = "0.93"


def cost_grid(report: RunReport) -> tuple[list[float | None], list[int], np.ndarray]:
    """Frequencies (rows; [None] without a clock knob), batch sizes (columns) and the shown metric per cell.

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
        if value is not None:
            grid[freqs.index(s.config.freq_mhz), batches.index(s.config.batch_size)] = value
    return freqs, batches, grid


def cell_of(config: Config | None, freqs: list[float | None], batches: list[int]) -> tuple[int, int] | None:
    """(row, column) of a config in the grid, or None when it is not on it."""
    if config is None or config.freq_mhz not in freqs or config.batch_size not in batches:
        return None
    return freqs.index(config.freq_mhz), batches.index(config.batch_size)


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
    several; chosen boxed red, baseline dashed; unmeasured grey."""
    plt = pyplot()
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    label, metric = shown_metric(report)
    freqs, batches, grid = cost_grid(report)
    measured = grid[~np.isnan(grid)]
    fig, ax = plt.subplots(figsize=(max(7.0, 2.2 + 0.95 * len(batches)), 2.9 + 0.5 * len(freqs)))
    cmap = plt.get_cmap("viridis_r").with_extremes(bad=UNMEASURED)
    norm = colour_norm(measured) if measured.size else None
    im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(len(batches)), [str(b) for b in batches])
    ax.set_yticks(range(len(freqs)), [freq_text(f) for f in freqs])
    ax.set_xlabel("batch size")
    ax.set_ylabel("GPU frequency (MHz)")
    ax.set_xticks(np.arange(-0.5, len(batches)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(freqs)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    spreads = {cell_of(s.config, freqs, batches): s for s in report.configs}
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v) and norm is not None:
            r, g, b, _ = cmap(norm(v))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            extra = _spread_text(spreads.get((i, j)), metric)
            ax.text(j, i + (0.13 if extra else 0), f"{v:.3g}", ha="center", va="center", fontsize=8, color=ink)
            if extra:
                ax.text(j, i - 0.2, extra, ha="center", va="center", fontsize=6.5, color=ink)
    for s in report.configs:
        cell = cell_of(s.config, freqs, batches) if not s.served else None
        if cell is not None:
            ax.text(cell[1], cell[0], "failed", ha="center", va="center", fontsize=7, color="#b00000")
    handles = []
    best_cell = cell_of(report.best, freqs, batches)
    base_cell = cell_of(report.baseline, freqs, batches)
    if base_cell is not None:
        inset = 0.1 if base_cell == best_cell else 0.04
        _box(plt, ax, base_cell, inset=inset, edgecolor="black", linewidth=3.5)
        _box(plt, ax, base_cell, inset=inset, edgecolor="white", linewidth=2, linestyle=(0, (3, 2)))
        handles.append(Line2D([], [], color="black", linewidth=2, linestyle="--", label=baseline_label(report)))
    if best_cell is not None:
        _box(plt, ax, best_cell, inset=0.02, edgecolor="#d62728", linewidth=3)
        handles.append(Line2D([], [], color="#d62728", linewidth=3, label=chosen_label(report)))
    handles.append(Line2D([], [], marker="s", color=UNMEASURED, linestyle="", markersize=10, label="not measured"))
    if any(_spread_text(s, metric) for s in report.configs):
        handles.append(Line2D([], [], linestyle="", label="±sd across windows ×windows measured"))
    if norm is not None:
        bar = fig.colorbar(im, ax=ax, label=f"{label}, lower is better")
        if isinstance(norm, LogNorm) and norm.vmin is not None and norm.vmax is not None:
            bar.set_ticks(np.geomspace(norm.vmin, norm.vmax, 6))
            plain_ticks(bar.ax.yaxis)
            bar.ax.yaxis.set_minor_formatter("")
    finish(fig, ax, path, heading=f"{label} per config", report=report, legend_handles=handles)
