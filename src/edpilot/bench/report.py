"""Tables and plots of a search sweep: a CSV of every run, a markdown summary, regret curves."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edpilot.bench.sweep import RunResult


def write_csv(results: Sequence[RunResult], path: Path) -> None:
    """One row per run (columns: the union of every row's keys, in first-seen order)."""
    columns: list[str] = []
    for r in results:
        columns += [k for k in r.row if k not in columns]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for r in results:
            writer.writerow(r.row)


def _f(values: Sequence[object]) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=float)  # type: ignore[arg-type]


def summarize(results: Sequence[RunResult]) -> list[dict[str, object]]:
    """Per strategy: final cost / oracle (median, p90, worst), rounds to 5 %, regret, gain, violations, drift."""
    out = []
    for name in dict.fromkeys(r.row["strategy"] for r in results):
        rows = [r.row for r in results if r.row["strategy"] == name]
        final = _f([r["final_ratio"] for r in rows])
        reach = _f([r["rounds_to_5pct"] for r in rows])
        regret = _f([r["mean_regret"] for r in rows])
        window = _f([r.get("final_ratio_window", np.nan) for r in rows])
        drift_keys = dict.fromkeys(k for r in rows for k in r if k.startswith("drift"))
        drift = {k: _f([r[k] for r in rows if k in r]) for k in drift_keys}
        entry: dict[str, object] = {
            "strategy": name,
            "runs": len(rows),
            "final_median": float(np.median(final)),
            "final_p90": float(np.quantile(final, 0.9)),
            "final_worst": float(final.max()),
            "within_1pct": float(np.mean(final <= 1.01)),
            "within_5pct": float(np.mean(final <= 1.05)),
            "window_final_median": float(np.median(window)),
            "window_final_worst": float(window.max()),
            "rounds_to_5pct_median": float(np.median(np.where(np.isnan(reach), np.inf, reach))),
            "mean_regret": float(regret.mean()),
            "median_regret": float(np.median(regret)),
            "steady_regret": float(np.mean(_f([r.get("mean_regret_steady", np.nan) for r in rows]))),
            "probes": int(sum(int(r.get("probes", 0)) for r in rows)),  # type: ignore[call-overload]
            "probe_regret": float(np.sum(_f([r.get("probe_regret", 0.0) for r in rows]))),
            "cut_rounds": int(sum(int(r.get("cut_rounds", 0)) for r in rows)),  # type: ignore[call-overload]
            "overloaded_rounds": int(sum(int(r.get("overloaded_rounds", 0)) for r in rows)),  # type: ignore[call-overload]
            "gain_vs_baseline_pct": float(np.mean(_f([r["gain_vs_baseline_pct"] for r in rows]))),
            "violating_rounds": int(sum(int(r["violating_rounds"]) for r in rows)),  # type: ignore[call-overload]
            "final_violations": int(sum(bool(r["final_violates"]) for r in rows)),
        }
        for key, values in sorted(drift.items()):
            if key.endswith("rounds_to_5pct"):
                entry[key.replace("rounds_to_5pct", "within_1_round")] = float(np.mean(values <= 1))
            else:
                entry[key] = float(np.median(values))
        out.append(entry)
    return out


def by_family(results: Sequence[RunResult]) -> list[dict[str, object]]:
    """Per scenario family and strategy: median and worst final ratio, mean regret."""
    out = []
    for family in dict.fromkeys(r.row["family"] for r in results):
        for name in dict.fromkeys(r.row["strategy"] for r in results):
            rows = [r.row for r in results if r.row["family"] == family and r.row["strategy"] == name]
            final = _f([r["final_ratio"] for r in rows])
            out.append(
                {
                    "family": family,
                    "strategy": name,
                    "runs": len(rows),
                    "final_median": float(np.median(final)),
                    "final_worst": float(final.max()),
                    "mean_regret": float(np.mean(_f([r["mean_regret"] for r in rows]))),
                }
            )
    return out


def versus_never_searching(results: Sequence[RunResult], strategy: str) -> list[dict[str, object]]:
    """Per scenario where the oracle beats the baseline config by ≥ 20 %: `strategy`'s cumulative experienced regret
    over its search rounds against the `baseline` strategy's (never searching), mean over seeds."""
    rows = []
    for name in dict.fromkeys(str(r.row["scenario"]) for r in results):
        ours = [r.row for r in results if r.row["scenario"] == name and r.row["strategy"] == strategy]
        never = [r.row for r in results if r.row["scenario"] == name and r.row["strategy"] == "baseline"]
        if not ours or not never or "cumulative_regret" not in ours[0]:
            continue
        gain = float(np.mean(_f([r["gain_vs_baseline_pct"] for r in never])))
        oracle_gain = 100.0 * (1.0 - 1.0 / float(np.mean(_f([r["final_ratio"] for r in never]))))
        if oracle_gain < 20.0 or gain != 0.0:
            continue
        a = float(np.mean(_f([r["cumulative_regret"] for r in ours])))
        b = float(np.mean(_f([r["cumulative_regret"] for r in never])))
        rows.append({"scenario": name, f"{strategy}_cumulative": a, "never_searching": b, "below": a < b})
    return rows


def worst_scenarios(results: Sequence[RunResult], strategy: str, count: int = 8) -> list[dict[str, object]]:
    """The scenarios where `strategy` does worst: by worst final ratio, then mean regret."""
    table: dict[str, list[dict[str, object]]] = {}
    for r in results:
        if r.row["strategy"] == strategy:
            table.setdefault(str(r.row["scenario"]), []).append(r.row)
    rows = [
        {
            "scenario": name,
            "oracle": rows[0]["oracle_config"],
            "final_worst": float(max(_f([r["final_ratio"] for r in rows]))),
            "final_median": float(np.median(_f([r["final_ratio"] for r in rows]))),
            "mean_regret": float(np.mean(_f([r["mean_regret"] for r in rows]))),
        }
        for name, rows in table.items()
    ]
    rows.sort(key=lambda r: (-float(r["final_worst"]), -float(r["mean_regret"])))  # type: ignore[arg-type]
    return rows[:count]


def markdown_table(rows: Sequence[dict[str, object]]) -> str:
    """A markdown table of dict rows (floats to 3 significant digits)."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else ("∞" if math.isinf(value) else f"{value:.3g}")
    return "" if value is None else str(value)


def write_report(results: Sequence[RunResult], directory: Path, *, plot: bool = True) -> dict[str, Path]:
    """runs.csv, summary.md (overall, per family, where edpilot does worst) and curves.png into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"csv": directory / "runs.csv", "markdown": directory / "summary.md"}
    write_csv(results, paths["csv"])
    parts = [
        "## Overall (every scenario × seed)",
        markdown_table(summarize(results)),
        "## Per scenario family",
        markdown_table(by_family(results)),
    ]
    if any(r.row["strategy"] == "edpilot" for r in results):
        parts += ["## Where edpilot does worst", markdown_table(worst_scenarios(results, "edpilot"))]
        never = versus_never_searching(results, "edpilot")
        if never:
            below = sum(bool(r["below"]) for r in never)
            parts += [
                f"## Cumulative regret against never searching ({below} of {len(never)} scenarios below)",
                markdown_table([r for r in never if not r["below"]] or never[:3]),
            ]
    paths["markdown"].write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    if plot:
        paths["plot"] = directory / "curves.png"
        plot_curves(results, paths["plot"])
    return paths


def plot_curves(results: Sequence[RunResult], path: Path) -> None:
    """Regret per round and incumbent / oracle per round, one line per strategy; one panel per strategy below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(str(r.row["strategy"]) for r in results))
    plain = [r for r in results if r.row["family"] != "drift"]
    fig, axes = plt.subplots(2, max(2, len(names)), figsize=(4 * max(2, len(names)), 7), squeeze=False)
    for name in names:
        runs = [r for r in plain if r.row["strategy"] == name]
        served = _ragged_mean([np.array(r.served[1:]) - 1 for r in runs])
        incumbent = _ragged_median([np.array(r.incumbent) for r in runs])
        axes[0, 0].plot(np.arange(1, len(served) + 1), served, label=name)
        axes[0, 1].plot(np.arange(len(incumbent)), incumbent, label=name)
    axes[0, 0].set(title="mean regret of the served config", xlabel="search round", ylabel="cost / oracle − 1")
    axes[0, 0].set_yscale("symlog", linthresh=0.1)
    axes[0, 1].set(title="median incumbent cost / oracle", xlabel="search round", ylabel="ratio", ylim=(0.98, 1.6))
    axes[0, 1].axhline(1.05, color="grey", lw=0.8, ls="--")
    axes[0, 0].legend()
    for ax in axes[0, 2:]:
        ax.axis("off")
    for ax, name in zip(axes[1], names):
        for r in (r for r in plain if r.row["strategy"] == name):
            ax.plot(np.arange(1, len(r.served)), np.array(r.served[1:]) - 1, color="C0", alpha=0.05, lw=0.8)
        ax.set(title=f"{name}: regret of every run", xlabel="search round", yscale="symlog")
    for ax in axes[1, len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _ragged_mean(curves: Sequence[np.ndarray]) -> np.ndarray:
    length = max(len(c) for c in curves)
    return np.array([np.mean([c[i] for c in curves if len(c) > i]) for i in range(length)])


def _ragged_median(curves: Sequence[np.ndarray]) -> np.ndarray:
    length = max(len(c) for c in curves)
    return np.array([np.median([c[i] for c in curves if len(c) > i]) for i in range(length)])
