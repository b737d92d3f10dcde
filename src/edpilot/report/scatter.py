"""Search progress per round, energy vs latency with the Pareto front, and latency alone for runs without energy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edpilot.report.data import RunReport, freq_text, pareto_front, running_min
from edpilot.report.figure import (
    BASELINE_STYLE,
    CHOSEN_STYLE,
    baseline_label,
    chosen_label,
    config_value,
    finish,
    mark_points,
    plain_ticks,
    pyplot,
    round_value,
    shown_metric,
    wants_log,
)
from edpilot.space import Config
from edpilot.stats import ConfigStats

LABEL_GAP_AXES = (0.09, 0.045)  # a front label is dropped when closer than this (axes fraction) to a placed one


def plot_convergence(report: RunReport, path: Path) -> None:
    """Each round's cost, the best so far, and the rounds that measured the chosen config and the baseline."""
    plt = pyplot()
    label, metric = shown_metric(report)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    values = [round_value(r, metric) for r in report.rounds]
    ok = [(r.round, v) for r, v in zip(report.rounds, values) if v is not None]
    ax.scatter([x for x, _ in ok], [v for _, v in ok], s=16, color="0.6", label="this round", zorder=2)
    best = [(r.round, b) for r, b in zip(report.rounds, running_min(values)) if b is not None]
    ax.step([x for x, _ in best], [b for _, b in best], where="post", color="C0", linewidth=2, label="best so far")
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
    ax.set_xlabel("round (0 = baseline)")
    ax.set_ylabel(f"{label}, lower is better")
    ax.legend(fontsize=8, loc="best")
    finish(fig, ax, path, heading=f"Search progress: {label} per round", report=report)


def _spread_labels(ax: Any, points: Sequence[ConfigStats], *, skip: set[Config]) -> None:
    """Label front points below-left, where no point can lie; drop a label that would cover one already placed."""
    ax.autoscale_view()
    to_axes = ax.transData + ax.transAxes.inverted()
    placed: list[tuple[float, float]] = []
    for p in points:
        if p.config in skip:
            continue
        x, y = to_axes.transform((p.mean_latency_s, p.energy_per_request_j))
        if any(abs(x - px) < LABEL_GAP_AXES[0] and abs(y - py) < LABEL_GAP_AXES[1] for px, py in placed):
            continue
        placed.append((x, y))
        ax.annotate(
            f"{freq_text(p.config.freq_mhz)}, b{p.config.batch_size}",
            (p.mean_latency_s, p.energy_per_request_j),
            xytext=(-5, -4),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize=7,
            color="0.2",
        )


def plot_pareto(report: RunReport, path: Path) -> None:
    """Energy per request against mean latency of every measured config; the Pareto front joined and labelled."""
    plt = pyplot()
    points = [p for p in report.configs if p.energy_per_request_j is not None and p.mean_latency_s is not None]
    fig, ax = plt.subplots(figsize=(8, 5.4))
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
    _spread_labels(ax, front, skip={k for k in (report.best, report.baseline) if k is not None})
    ax.set_xlabel("mean latency (s)")
    ax.set_ylabel("energy per request (J)")
    ax.legend(fontsize=8, loc="best")
    finish(fig, ax, path, heading="Energy vs latency per config (EDP is their product)", report=report)


def plot_latency(report: RunReport, path: Path) -> None:
    """Mean latency against batch size, one line per GPU frequency (runs that measured no energy)."""
    plt = pyplot()
    points = [p for p in report.configs if p.mean_latency_s is not None]
    freqs = sorted({p.config.freq_mhz for p in points}, key=lambda f: (f is not None, f))
    fig, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap("plasma")
    for n, f in enumerate(freqs):
        row = sorted((p for p in points if p.config.freq_mhz == f), key=lambda p: p.config.batch_size)
        colour = cmap(n / max(1, len(freqs) - 1) * 0.85)
        name = "no clock knob" if f is None else f"{f:g} MHz"
        ax.plot([p.config.batch_size for p in row], [p.mean_latency_s for p in row], "o-", color=colour, label=name)
    mark_points(ax, report, lambda p: p.config.batch_size, lambda p: p.mean_latency_s)
    if wants_log([p.mean_latency_s for p in points]):
        ax.set_yscale("log")
        plain_ticks(ax.yaxis)
    ax.set_xticks(sorted({p.config.batch_size for p in points}))
    ax.set_xlabel("batch size")
    ax.set_ylabel("mean latency (s), lower is better")
    ax.legend(fontsize=8, loc="best", ncol=2 if len(freqs) > 6 else 1)
    finish(fig, ax, path, heading="Mean latency per config (no energy measured)", report=report)
