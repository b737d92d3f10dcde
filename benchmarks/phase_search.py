"""The search over per-phase clocks: prefill GPU level × decode GPU level × batch, strategies at budgets 15 and 30.

Each run is `edpilot bench --sweep`'s: a real simulated tuning session on one continuous Poisson stream, scored
by the steady-state oracle (`bench.oracle`, which prices a decode level with `AnalyticModel.phase_cost`). The
grid is the default 7 spread GPU levels for prefill and the same 7 for decode × batch 1, 2, 4, 8, 16, 28
(294 configs), on the simulated AGX Orin 32GB, at prompts of ~100 and ~1500 tokens.

    python benchmarks/phase_search.py [--seeds 5] [--strategies edpilot,camel,random,optuna-tpe] [--markdown]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from edpilot.bench.oracle import Truth
from edpilot.bench.scenarios import Scenario
from edpilot.bench.sweep import run_one, scenario_truth

BUDGETS = (15, 30)
BATCHES = "1,2,4,8,16,28"
SETTINGS = (  # (model, prompt tokens, Poisson rate req/s): a rate each prompt length is served at with room
    ("llama-3.2-1b", 100, 1.0),
    ("llama-3.2-1b", 100, 4.0),
    ("llama-3.2-1b", 1500, 0.25),
    ("qwen2.5-3b", 100, 1.0),
    ("qwen2.5-3b", 100, 4.0),
    ("qwen2.5-3b", 1500, 0.25),
)


def scenarios() -> list[Scenario]:
    """The per-phase scenarios."""
    return [
        Scenario(
            f"phase-{model.split('-')[0]}-p{prompt}-r{rate:g}",
            "phase",
            rate_per_s=rate,
            model=model,
            batches=BATCHES,
            prompt_tokens=prompt,
            phase_clocks=True,
        )
        for model, prompt, rate in SETTINGS
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategies", default="edpilot,camel,random,optuna-tpe")
    parser.add_argument("--json", help="write every run's row here")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows, oracles = [], []
    for scn in scenarios():
        truth, _, _ = scenario_truth(scn, scn.rate_per_s)
        oracles.append(oracle_line(scn, truth))
        for strategy in args.strategies.split(","):
            for budget in BUDGETS:
                for seed in range(args.seeds):
                    row = run_one(scn, strategy, seed, budget=budget).row
                    row["oracle_cost"] = truth.oracle_cost
                    rows.append(row)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    print("\n".join([*ORACLE_HEAD, *oracles, "", markdown(rows)]) if args.markdown else json.dumps(rows, indent=1))


ORACLE_HEAD = [
    "| scenario | configs | oracle config | best with one level for both phases | per-phase gain |",
    "|---|---|---|---|---|",
]


def oracle_line(scn: Scenario, truth: Truth) -> str:
    """The scenario's oracle, and its gain over the best config whose decode level is its prefill level."""
    one = [i for i, c in enumerate(truth.space) if c.decode_levels().get("gpu_mhz") == c.level("gpu_mhz")]
    allowed = [i for i in one if truth.allowed[i]] or one
    i = min(allowed, key=lambda k: truth.outlook.cost[k])
    gain = 1.0 - truth.oracle_cost / float(truth.outlook.cost[i])
    return (
        f"| {scn.name} ({scn.rate_per_s:g} req/s) | {len(truth.space)} | {truth.oracle_config} | "
        f"{truth.space.configs[i]} | {100 * gain:.1f} % |"
    )


def markdown(rows: list[dict[str, object]]) -> str:
    """Final ratio to the oracle per strategy and budget: median, worst, share within 5 %; over all scenarios."""
    lines = [
        "| strategy | budget | runs | median final ratio | worst | within 5 % | mean regret |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(str(r["strategy"]), int(r["budget"])) for r in rows}, key=lambda k: (k[0], k[1]))  # type: ignore[call-overload]
    for strategy, budget in keys:
        mine = [r for r in rows if r["strategy"] == strategy and r["budget"] == budget]
        ratios = np.array([float(r["final_ratio"]) for r in mine])  # type: ignore[arg-type]
        regret = np.array([float(r["mean_regret"]) for r in mine])  # type: ignore[arg-type]
        lines.append(
            f"| {strategy} | {budget} | {len(mine)} | {np.median(ratios):.3f} | {ratios.max():.3f} | "
            f"{100 * np.mean(ratios <= 1.05):.0f} % | {np.mean(regret):.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
