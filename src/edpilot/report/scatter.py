"""Search progress per round, energy vs latency with the Pareto front, and latency alone for runs without energy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edpilot.report.data import RunReport, freq_text, incumbent_means, pareto_front, spread
from edpilot.report.figure import (
    BASELINE_STYLE,
    CHOSEN_STYLE,
    baseline_label,
    chosen_label,
    config_value,
    finish,
    layout,
    mark_points,
    plain_ticks,
    pyplot,
    round_value,
    save,
    shown_metric,
    tick_at,
    wants_log,
)
from edpilot.space import Config
from edpilot.stats import ConfigStats


def plot_convergence(report: RunReport, path: Path) -> None:
    """Each round's cost, the incumbent's mean (its windows so far, ± their spread), and the chosen and baseline
    rounds; the y axis has a tick at the baseline's mean."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    label, metric = shown_metric(report)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    values = [round_value(r, metric) for r in report.rounds]
    ok = [(r.round, v) for r, v in zip(report.rounds, values) if v is not None]
    ax.scatter([x for x, _ in ok], [v for _, v in ok], s=16, color="0.6", label="this round", zorder=2)
    steps = incumbent_means(report, metric)
    if steps:
        xs, ys = [x for x, _, _ in steps], [m for _, _, m in steps]
        ax.step(xs, ys, where="post", color="C0", linewidth=2, label="incumbent (chosen so far): mean of its windows")
        band = [_band(report, c, metric, upto=x) for x, c, _ in steps]
        lo = [m - (sd or 0.0) for m, sd in zip(ys, band)]
        hi = [m + (sd or 0.0) for m, sd in zip(ys, band)]
        if any(band):
            ax.fill_between(xs, lo, hi, step="post", color="C0", alpha=0.15, linewidth=0, label="± sd of its windows")
    for config, style, name in (
        (report.baseline, BASELINE_STYLE, baseline_label(report)),
        (report.best, CHOSEN_STYLE, chosen_label(report)),
    ):
        at = [(r.round, v) for r, v in zip(report.rounds, values) if r.config == config and v is not None]
        stats = report.stats(config)
        if at and stats is not None:
            line = "black" if style["color"] == "none" else style["color"]
            point_style = {**style, "s": style["s"] * 0.6}
            ax.scatter([x for x, _ in at], [v for _, v in at], label=f"{name}; dashed: its mean", **point_style)
            ax.axhline(config_value(stats, metric), color=line, linestyle="--", linewidth=1.2)
    failed = [r.round for r in report.rounds if r.obs.failed]
    if failed:
        ax.scatter(
            failed,
            [0.03] * len(failed),
            marker="x",
            color="#b00000",
            transform=ax.get_xaxis_transform(),
            label="failed round",
        )
    if wants_log([v for _, v in ok]):
        ax.set_yscale("log")
        plain_ticks(ax.yaxis)
    base = report.stats(report.baseline)
    base_value = None if base is None else config_value(base, metric)
    if base_value is not None:
        tick_at(ax.yaxis, base_value, "baseline")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round (0 = baseline)")
    ax.set_ylabel(f"{label}, lower is better")
    ax.legend(fontsize=8, loc="best")
    finish(fig, ax, path, heading=f"Search progress: {label} per round", report=report)


def _band(report: RunReport, config: Config, metric: str, *, upto: int) -> float | None:
    """Spread of `config`'s windows measured up to round `upto`."""
    stats = ConfigStats(config)
    for r in report.rounds:
        if r.round <= upto and r.config == config:
            stats.add(r.obs, r.cost)
    return spread(stats, metric)


LABEL_OFFSETS_PT = ((5, 5), (5, -5), (-5, 5), (-5, -5), (9, 0), (-9, 0), (0, 9), (0, -9), (14, 14), (-14, -14))
POINT_BOX_PX = 9.0  # half-size of the box a marker keeps free of labels (the largest marker is ~8 px)


def place_labels(
    ax: Any,
    anchors: Sequence[tuple[float, float]],
    texts: Sequence[str],
    *,
    markers: Sequence[tuple[float, float]] = (),
) -> list[int]:
    """Label each anchor (data coordinates) at the first offset where its text overlaps no placed label, no
    marker (the anchors and `markers`) and stays inside the axes; return the indices that found no place."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_px = ax.transData.transform
    points = [to_px(a) for a in [*anchors, *markers]]
    placed: list[Any] = []
    unplaced: list[int] = []
    for n, (anchor, text) in enumerate(zip(anchors, texts)):
        for dx, dy in LABEL_OFFSETS_PT:
            note = ax.annotate(
                text,
                anchor,
                xytext=(dx, dy),
                textcoords="offset points",
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                fontsize=7,
                color="0.15",
                arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6} if max(abs(dx), abs(dy)) > 9 else None,
            )
            box = note.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            covers = any(
                box.x0 - POINT_BOX_PX < px < box.x1 + POINT_BOX_PX
                and box.y0 - POINT_BOX_PX < py < box.y1 + POINT_BOX_PX
                for px, py in points
            )
            if inside and not covers and not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            note.remove()
        else:
            unplaced.append(n)
    return unplaced


def iso_edp_curves(ax: Any, levels_j_s: Sequence[float]) -> Any:
    """Dotted curves of constant EDP (energy × latency) across the axes' latency range; returns a legend handle."""
    import numpy as np
    from matplotlib.lines import Line2D

    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    latency_s = np.geomspace(max(x0, 1e-12), x1, 200)
    for level in levels_j_s:
        ax.plot(latency_s, level / latency_s, linestyle=":", color="0.55", linewidth=1, zorder=1)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    shown = ", ".join(f"{v:.3g}" for v in sorted(levels_j_s))
    return Line2D([], [], linestyle=":", color="0.55", label=f"equal EDP (J·s): {shown}")


def _edp_levels(report: RunReport) -> list[float]:
    """EDP of the chosen config and the baseline, and two levels spaced between them (geometrically)."""
    import numpy as np

    ends = [s.edp for s in (report.stats(report.best), report.stats(report.baseline)) if s is not None and s.edp]
    if not ends:
        return []
    lo, hi = min(ends), max(ends)
    return sorted({float(v) for v in np.geomspace(lo, hi, 4)}) if hi > lo * 1.05 else [lo]


def plot_pareto(report: RunReport, path: Path) -> None:
    """Energy per request against mean latency of every measured config, ± the spread of its windows; the Pareto
    front joined and labelled where a label fits; curves of equal EDP; ticks at the baseline's values."""
    plt = pyplot()
    points = [p for p in report.configs if p.energy_per_request_j is not None and p.mean_latency_s is not None]
    fig, ax = plt.subplots(figsize=(8, 6))
    ok = [p for p in points if p.keeps_up]
    bad = [p for p in points if not p.keeps_up]
    if ok:
        sc = ax.scatter(
            [p.mean_latency_s for p in ok],
            [p.energy_per_request_j for p in ok],
            c=[p.config.freq_mhz or 0.0 for p in ok],
            s=[14 + 2 * p.config.batch_size for p in ok],
            cmap="plasma",
            label="keeps up",
            zorder=3,
        )
        fig.colorbar(sc, ax=ax, label="GPU frequency (MHz); marker size = batch size")
    if bad:
        ax.scatter(
            [p.mean_latency_s for p in bad],
            [p.energy_per_request_j for p in bad],
            marker="x",
            color="0.5",
            label="cannot keep up",
            zorder=3,
        )
    several = [p for p in points if spread(p, "energy_per_request_j") is not None]
    if several:
        ax.errorbar(
            [p.mean_latency_s for p in several],
            [p.energy_per_request_j for p in several],
            xerr=[spread(p, "mean_latency_s") or 0.0 for p in several],
            yerr=[spread(p, "energy_per_request_j") or 0.0 for p in several],
            fmt="none",
            ecolor="0.35",
            elinewidth=0.9,
            capsize=2.5,
            zorder=2,
            label="± spread across windows (configs measured more than once)",
        )
    front = pareto_front(points)
    ax.plot(
        [p.mean_latency_s for p in front],
        [p.energy_per_request_j for p in front],
        "k--",
        lw=1,
        label="Pareto front",
        zorder=2,
    )
    mark_points(ax, report, lambda p: p.mean_latency_s, lambda p: p.energy_per_request_j)
    ax.set_xscale("log")
    plain_ticks(ax.xaxis)
    ax.margins(x=0.12, y=0.1)
    ax.autoscale_view()
    handles, _ = ax.get_legend_handles_labels()
    levels = _edp_levels(report)
    if levels:
        handles.append(iso_edp_curves(ax, levels))
    base = report.stats(report.baseline)
    if base is not None and base.mean_latency_s is not None and base.energy_per_request_j is not None:
        tick_at(ax.xaxis, base.mean_latency_s, "baseline")
        tick_at(ax.yaxis, base.energy_per_request_j, "baseline")
    ax.set_xlabel("mean latency (s)")
    ax.set_ylabel("energy per request (J)")
    marked = {k for k in (report.best, report.baseline) if k is not None}
    labelled = [p for p in front if p.config not in marked]
    texts = [f"{freq_text(p.config.freq_mhz)}, b{p.config.batch_size}" for p in labelled]
    heading = "Energy vs latency per config (EDP is their product)"
    layout(fig, ax, heading=heading, report=report, legend_handles=handles, footnote_room=bool(labelled))
    everything = [_latency_energy(p) for p in points]
    unplaced = place_labels(ax, [_latency_energy(p) for p in labelled], texts, markers=everything)
    if unplaced:
        listed = "; ".join(texts[n] for n in unplaced)
        fig.text(0.5, 0.01, f"front points with no room for a label (MHz, batch): {listed}", fontsize=7, ha="center")
    save(fig, path)


def plot_latency(report: RunReport, path: Path) -> None:
    """Mean latency against batch size, one line per GPU frequency, ± the spread across windows (runs that
    measured no energy)."""
    plt = pyplot()
    points = [p for p in report.configs if p.mean_latency_s is not None]
    freqs = sorted({p.config.freq_mhz for p in points}, key=lambda f: (f is not None, f))
    fig, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap("plasma")
    for n, f in enumerate(freqs):
        row = sorted((p for p in points if p.config.freq_mhz == f), key=lambda p: p.config.batch_size)
        colour = cmap(n / max(1, len(freqs) - 1) * 0.85)
        name = "no clock knob" if f is None else f"{f:g} MHz"
        ax.errorbar(
            [p.config.batch_size for p in row],
            [p.mean_latency_s for p in row],
            yerr=[spread(p, "mean_latency_s") or 0.0 for p in row],
            fmt="o-",
            color=colour,
            capsize=2.5,
            label=name,
        )
    mark_points(ax, report, lambda p: p.config.batch_size, lambda p: p.mean_latency_s)
    if wants_log([p.mean_latency_s for p in points]):
        ax.set_yscale("log")
        plain_ticks(ax.yaxis)
    ax.set_xticks(sorted({p.config.batch_size for p in points}))
    ax.set_xlabel("batch size")
    ax.set_ylabel("mean latency (s), lower is better")
    ax.legend(fontsize=8, loc="best", ncol=2 if len(freqs) > 6 else 1)
    finish(fig, ax, path, heading="Mean latency per config (no energy measured)", report=report)


def _latency_energy(stats: ConfigStats) -> tuple[float, float]:
    """A config's (mean latency s, energy per request J); only for configs where both were measured."""
    assert stats.mean_latency_s is not None and stats.energy_per_request_j is not None
    return stats.mean_latency_s, stats.energy_per_request_j
