"""Reproduce the paper's headline on the simulator: EDP gain of the chosen config over the baseline.

For each model and arrival rate: the true optimum of the grid (every config measured over a long
window), what `camel` (the paper's search) chooses with the default budget over several seeds, and,
for comparison with the paper, the optimum when latency counts batch service only (no batch-fill wait).

    python benchmarks/paper_headline.py [--seeds 5] [--budget 30] [--markdown]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from edpilot.backends import build_space, open_backends
from edpilot.objective import Objective
from edpilot.runner import Runner
from edpilot.space import Config
from edpilot.tuner import tune
from edpilot.workload import Workload, builtin_prompts
from edpilot.workload.prompts import estimate_tokens

MODELS = ("llama-3.2-1b", "qwen2.5-3b")
RATES = (0.5, 1.0, 2.0)
PAPER = {"llama-3.2-1b": Config(816.0, 20), "qwen2.5-3b": Config(930.75, 24)}
EVAL_REQUESTS = 336  # long windows for the "true" EDP of a config (a multiple of every paper batch size)


def true_edp(model: str, rate: float, config: Config) -> float:
    """EDP of one config measured over a long window (noise averages out)."""
    backends = open_backends(device="sim", model=model, seed=123)
    runner = Runner(
        device=backends.device,
        engine=backends.engine,
        clock=backends.clock,
        workload=Workload(rate_per_s=rate),
        requests_per_round=EVAL_REQUESTS,
        seed=123,
    )
    return runner.measure(config).edp


def service_only_optimum(model: str) -> Config:
    """Grid optimum of (batch energy / b) × (batch service time): latency without the batch-fill wait."""
    backends = open_backends(device="sim", model=model)
    sim = backends.device.model
    prompt_tokens = int(np.mean([estimate_tokens(p) for p in builtin_prompts()]))
    space = build_space(backends)

    def cost(c: Config) -> float:
        batch = sim.expected_cost(c.freq_mhz, [prompt_tokens] * c.batch_size, 70)
        return batch.energy_j / c.batch_size * batch.service_s

    return min(space, key=cost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    rows = []
    for model in MODELS:
        service_opt = service_only_optimum(model)
        for rate in RATES:
            backends = open_backends(device="sim", model=model)
            space = build_space(backends)
            edps = {c: true_edp(model, rate, c) for c in space}
            optimum = min(edps, key=edps.get)
            base = space.baseline()
            picks, gains, regrets = [], [], []
            for seed in range(args.seeds):
                b = open_backends(device="sim", model=model, seed=seed)
                runner = Runner(
                    device=b.device, engine=b.engine, clock=b.clock, workload=Workload(rate_per_s=rate), seed=seed
                )
                result = tune(
                    runner=runner,
                    space=space,
                    strategy="camel",
                    objective=Objective("edp"),
                    budget=args.budget,
                    seed=seed,
                )
                pick = result.best.config
                picks.append(pick)
                gains.append(100 * (1 - edps[pick] / edps[base]))
                regrets.append(100 * (edps[pick] / edps[optimum] - 1))
            rows.append(
                {
                    "model": model,
                    "rate_per_s": rate,
                    "optimum": [optimum.freq_mhz, optimum.batch_size],
                    "optimum_gain_pct": round(100 * (1 - edps[optimum] / edps[base]), 1),
                    "camel_picks": sorted({(p.freq_mhz, p.batch_size) for p in picks}),
                    "camel_gain_pct_mean": round(float(np.mean(gains)), 1),
                    "camel_regret_pct_mean": round(float(np.mean(regrets)), 2),
                    "service_only_optimum": [service_opt.freq_mhz, service_opt.batch_size],
                    "paper": [PAPER[model].freq_mhz, PAPER[model].batch_size] if rate == 1.0 else None,
                }
            )
    if args.markdown:
        print(
            "| model | λ (req/s) | optimum (MHz, b) | its EDP gain | camel picks | camel gain | camel regret | "
            "optimum, service-only latency | paper |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            picks = ", ".join(f"({f:g}, {b})" for f, b in r["camel_picks"])
            paper = "" if r["paper"] is None else f"({r['paper'][0]:g}, {r['paper'][1]})"
            print(
                f"| {r['model']} | {r['rate_per_s']:g} | ({r['optimum'][0]:g}, {r['optimum'][1]}) | "
                f"{r['optimum_gain_pct']}% | {picks} | {r['camel_gain_pct_mean']}% | {r['camel_regret_pct_mean']}% | "
                f"({r['service_only_optimum'][0]:g}, {r['service_only_optimum'][1]}) | {paper} |"
            )
    else:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
