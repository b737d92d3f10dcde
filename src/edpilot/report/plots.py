"""PNG plots of a run log: EDP heatmap over the grid, convergence, and energy vs latency with the Pareto front."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edpilot.errors import ConfigError
from edpilot.report.data import config_points, incumbent_edp, pareto_front


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'edpilot[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _summary(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in records if r.get("type") == "summary"), None)


def plot_heatmap(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Observed mean EDP of every config on the frequency × batch grid; unmeasured cells blank."""
    plt = _pyplot()
    points = config_points(records)
    if not points:
        raise ConfigError("the run log has no energy readings to plot")
    run = next((r for r in records if r.get("type") == "run"), {})
    freqs = sorted(set(run.get("freqs_mhz", [])) | {p.freq_mhz for p in points})
    batches = sorted(set(run.get("batch_sizes", [])) | {p.batch_size for p in points})
    grid = np.full((len(freqs), len(batches)), np.nan)
    for p in points:
        grid[freqs.index(p.freq_mhz), batches.index(p.batch_size)] = p.edp
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(batches), 1.2 + 0.55 * len(freqs)))
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis_r")
    ax.set_xticks(range(len(batches)), [str(b) for b in batches])
    ax.set_yticks(range(len(freqs)), [f"{f:g}" for f in freqs])
    ax.set_xlabel("batch size")
    ax.set_ylabel("GPU frequency (MHz)")
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7, color="white")
    summary = _summary(records)
    if summary:
        best = summary["best"]
        ax.add_patch(
            plt.Rectangle(
                (batches.index(best["batch_size"]) - 0.5, freqs.index(best["freq_mhz"]) - 0.5),
                1,
                1,
                fill=False,
                edgecolor="red",
                linewidth=2.5,
                label="chosen",
            )
        )
        ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(im, ax=ax, label="EDP (J·s), lower is better")
    ax.set_title("Observed EDP per config")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_convergence(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Incumbent (best so far) EDP per round, with each round's own EDP."""
    plt = _pyplot()
    rounds = [r for r in records if r.get("type") == "round"]
    x = [r["round"] for r in rounds]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(x, [r.get("edp") for r in rounds], s=14, color="0.6", label="this round")
    ax.step(x, incumbent_edp(records), where="post", color="C0", linewidth=2, label="best so far")
    summary = _summary(records)
    if summary and summary.get("edp_baseline") is not None:
        ax.axhline(summary["edp_baseline"], color="C3", linestyle="--", label="baseline")
    ax.set_yscale("log")
    ax.set_xlabel("round (0 = baseline)")
    ax.set_ylabel("EDP (J·s)")
    ax.set_title("Convergence")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pareto(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Energy per request vs mean latency of every observed config; the Pareto front joined."""
    plt = _pyplot()
    points = config_points(records)
    if not points:
        raise ConfigError("the run log has no energy readings to plot")
    fig, ax = plt.subplots(figsize=(7, 5))
    ok = [p for p in points if p.keeps_up]
    bad = [p for p in points if not p.keeps_up]
    sc = ax.scatter(
        [p.mean_latency_s for p in ok],
        [p.energy_per_request_j for p in ok],
        c=[p.freq_mhz for p in ok],
        s=[12 + 2 * p.batch_size for p in ok],
        cmap="plasma",
        label="keeps up",
    )
    if bad:
        ax.scatter(
            [p.mean_latency_s for p in bad],
            [p.energy_per_request_j for p in bad],
            marker="x",
            color="0.5",
            label="cannot keep up",
        )
    front = pareto_front(points)
    ax.plot(
        [p.mean_latency_s for p in front],
        [p.energy_per_request_j for p in front],
        "k--",
        lw=1,
        label="Pareto front",
    )
    for p in front:
        ax.annotate(f"{p.freq_mhz:g},{p.batch_size}", (p.mean_latency_s, p.energy_per_request_j), fontsize=7)
    if ok:
        fig.colorbar(sc, ax=ax, label="GPU frequency (MHz); marker size = batch")
    ax.set_xscale("log")
    ax.set_xlabel("mean latency (s)")
    ax.set_ylabel("energy per request (J)")
    ax.set_title("Energy vs latency of observed configs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_plots(records: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write heatmap.png, convergence.png and pareto.png into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "heatmap.png", out_dir / "convergence.png", out_dir / "pareto.png"]
    for plot, path in zip((plot_heatmap, plot_convergence, plot_pareto), paths):
        plot(records, path)
    return paths
