"""Three knobs (issue 19): GPU clock × memory clock × batch (7 × 4 × 7 = 196 configs) on the simulated AGX Orin 32GB.

    python benchmarks/three_knobs.py [--seeds 5] [--budgets 15,30] [--workers 2] [--output bench-knobs]

Every strategy runs a real simulated tuning session per scenario, seed and budget (`bench.sweep.run_one`) and
is scored by its final choice's steady-state cost over the oracle's (`final_ratio`). Also printed: per scenario,
how much lower the best three-knob config's cost is than the best (GPU, batch) config's at the board's memory
clock (the top level, where the board holds it) — what searching the memory clock can gain at all.
Targets: median final ratio ≤ 1.02 at budget ≤ 20, worst ≤ 1.05.
"""

from __future__ import annotations

import argparse
import csv
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from edpilot.bench import knob_scenarios
from edpilot.bench.scenarios import Scenario
from edpilot.bench.sweep import run_one, scenario_truth

STRATEGIES = ("edpilot", "optuna-tpe", "camel", "random")


def knob_gain_pct(scn: Scenario) -> tuple[str, str, float]:
    """The best config, the best at the top memory clock, and how much lower (%) the first's cost is."""
    truth, _, _ = scenario_truth(scn, scn.rate_per_s)
    space = truth.space
    costs = np.array([truth.cost(c) for c in space])
    top = space.axis("emc_mhz").levels[-1]  # type: ignore[union-attr]
    at_top = [i for i, c in enumerate(space) if c.level("emc_mhz") == top]
    best_top = at_top[int(np.argmin(costs[at_top]))]
    gain = 100.0 * (1.0 - costs.min() / costs[best_top])
    return str(space.configs[int(np.argmin(costs))]), str(space.configs[best_top]), gain


def _runs(scn: Scenario, seeds: int, budgets: tuple[int, ...]) -> list[dict[str, object]]:
    rows = []
    for budget in budgets:
        for strategy in STRATEGIES:
            for seed in range(seeds):
                row = run_one(scn, strategy, seed, budget=budget).row
                rows.append(
                    {
                        k: row[k]
                        for k in ("scenario", "strategy", "seed", "budget", "grid", "final_ratio", "mean_regret")
                    }
                )
                rows[-1] |= {"final_config": row["final_config"], "oracle_config": row["oracle_config"]}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="15,30")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("bench-knobs"))
    args = parser.parse_args()
    budgets = tuple(int(b) for b in args.budgets.split(","))
    scenarios = knob_scenarios()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = [r for f in [pool.submit(_runs, s, args.seeds, budgets) for s in scenarios] for r in f.result()]
    args.output.mkdir(parents=True, exist_ok=True)
    with open(args.output / "runs.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("| scenario | best 3-knob config | best at the top memory clock | 3-knob gain |")
    print("|---|---|---|---:|")
    for scn in scenarios:
        best, top, gain = knob_gain_pct(scn)
        print(f"| {scn.name} | {best} | {top} | {gain:.1f} % |")
    print()
    print("| budget | strategy | median | p90 | worst | within 2 % | within 5 % | mean regret while tuning |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for budget in budgets:
        for strategy in STRATEGIES:
            mine = [x for x in rows if x["strategy"] == strategy and x["budget"] == budget]
            r = np.array([x["final_ratio"] for x in mine])
            regret = np.array([x["mean_regret"] for x in mine])
            print(
                f"| {budget} | {strategy} | {np.median(r):.3f} | {np.quantile(r, 0.9):.3f} | {r.max():.3f} "
                f"| {np.mean(r <= 1.02):.0%} | {np.mean(r <= 1.05):.0%} | {np.mean(regret):.3f} |"
            )
    print()
    print("| scenario | budget | " + " | ".join(f"{s} median / worst" for s in STRATEGIES) + " |")
    print("|---|---:|" + "---:|" * len(STRATEGIES))
    for scn in scenarios:
        for budget in budgets:
            cells = []
            for strategy in STRATEGIES:
                r = [
                    x["final_ratio"]
                    for x in rows
                    if (x["scenario"], x["strategy"], x["budget"]) == (scn.name, strategy, budget)
                ]
                cells.append(f"{np.median(r):.3f} / {max(r):.3f}")
            print(f"| {scn.name} | {budget} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
