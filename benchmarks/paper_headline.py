"""The paper's headline on the simulator, in both views: our default setting and the paper's.

For each model and arrival rate, every config of the paper's grid is measured once on the simulated
Jetson AGX Orin 32GB with noise switched off (the model's expected batch cost), under

- ours:  objective edp,          energy scope total (idle time between batches counts), and
- paper: objective weighted:0.5, energy scope active (batch service only) — what `tune --paper` selects,

and the best config of each is reported with its gain over the baseline (highest level, largest batch).
With `--seeds N`, `camel` (the paper's search, reconstructed) also tunes N times per setting with noise on.

    python benchmarks/paper_headline.py [--seeds 3] [--budget 30] [--requests 336] [--markdown]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edpilot.backends import build_space, open_backends
from edpilot.objective import Objective, Observation, parse_objective
from edpilot.runner import Runner
from edpilot.sim import SimEngine
from edpilot.sim.model import BatchCost, PerformanceModel
from edpilot.space import Config, ConfigSpace
from edpilot.tuner import tune
from edpilot.workload import Workload

MODELS = ("llama-3.2-1b", "qwen2.5-3b")
RATES = (0.5, 1.0, 2.0)
OUTPUT_TOKENS = 70
PAPER = {"llama-3.2-1b": Config.of(20, gpu_mhz=816.0), "qwen2.5-3b": Config.of(24, gpu_mhz=930.75)}
SETTINGS = {"ours": ("edp", "total"), "paper": ("weighted:0.5", "active")}


@dataclass(frozen=True)
class NoiseFree:
    """A performance model whose every batch costs exactly its expectation."""

    inner: PerformanceModel

    def batch_cost(
        self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int, rng: np.random.Generator
    ) -> BatchCost:
        """The expected cost; `rng` is not drawn from."""
        return self.inner.expected_cost(freq_mhz, prompt_tokens, output_tokens)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def runner_for(model: str, rate: float, scope: str, *, seed: int, requests: int, noise: bool) -> Runner:
    """A runner on a fresh simulated 32GB Orin at uniform arrivals of `rate` req/s."""
    b = open_backends(device="sim", model=model, seed=seed)
    engine = b.engine if noise else SimEngine(b.device, NoiseFree(b.device.model), b.clock, np.random.default_rng(0))
    return Runner(
        device=b.device,
        engine=engine,
        clock=b.clock,
        workload=Workload(rate_per_s=rate, output_tokens=OUTPUT_TOKENS),
        requests_per_round=requests,
        energy_scope=scope,  # type: ignore[arg-type]
        seed=seed,
    )


def costs(objective: Objective, obs: dict[Config, Observation], base: Config) -> dict[Config, float]:
    """Every config's cost under `objective` (weighted: normalised by the baseline's observation)."""
    return {c: objective.cost(o, obs[base]) for c, o in obs.items()}


def gain_pct(value: float, base: float) -> float:
    """How much lower `value` is than `base`, in percent, one decimal."""
    return round(100.0 * (1.0 - value / base), 1)


def one_case(model: str, rate: float, space: ConfigSpace, *, requests: int, seeds: int, budget: int) -> dict:
    """Both views of one model at one arrival rate."""
    base = space.baseline()
    obs = {
        scope: {c: runner_for(model, rate, scope, seed=1, requests=requests, noise=False).measure(c) for c in space}
        for scope in ("total", "active")
    }
    row: dict = {"model": model, "rate_per_s": rate, "baseline": [base.freq_mhz, base.batch_size]}
    for name, (objective_text, scope) in SETTINGS.items():
        objective = parse_objective(objective_text)
        cost = costs(objective, obs[scope], base)
        best = min(cost, key=cost.get)
        edp = {c: o.edp for c, o in obs[scope].items()}
        total_edp = {c: o.edp for c, o in obs["total"].items()}
        view = {
            "objective": objective_text,
            "energy_scope": scope,
            "best": [best.freq_mhz, best.batch_size],
            "objective_gain_pct": gain_pct(cost[best], cost[base]),
            "edp_gain_pct": gain_pct(edp[best], edp[base]),
            "total_edp_gain_pct": gain_pct(total_edp[best], total_edp[base]),
        }
        if seeds:
            picks = []
            for seed in range(seeds):
                runner = runner_for(model, rate, scope, seed=seed, requests=32, noise=True)
                picks.append(
                    tune(
                        runner=runner, space=space, strategy="camel", objective=objective, budget=budget, seed=seed
                    ).best.config
                )
            view["camel_picks"] = sorted({(p.freq_mhz, p.batch_size) for p in picks})
            view["camel_edp_gain_pct_mean"] = round(float(np.mean([gain_pct(edp[p], edp[base]) for p in picks])), 1)
        row[name] = view
    row["paper_reported"] = None
    if rate == 1.0:
        pick, weighted = PAPER[model], costs(parse_objective("weighted:0.5"), obs["active"], base)
        row["paper_reported"] = {
            "config": [pick.freq_mhz, pick.batch_size],
            "here_weighted_gain_pct": gain_pct(weighted[pick], weighted[base]),
            "here_edp_gain_pct": gain_pct(obs["active"][pick].edp, obs["active"][base].edp),
        }
    return row


def markdown(rows: list[dict]) -> str:
    """The side-by-side table of docs/paper-reproduction.md."""
    cfg = lambda c: f"({c[0]:g}, {c[1]})"  # noqa: E731
    lines = [
        "| model | λ (req/s) | ours: best (MHz, b) | ours: EDP gain | paper setting: best (MHz, b) | "
        "its weighted-cost gain | its EDP gain (active energy) | its EDP gain (total energy) | the paper's pick |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o, p = r["ours"], r["paper"]
        reported = r["paper_reported"]
        paper = ""
        if reported is not None:
            paper = (
                f"{cfg(reported['config'])}; on our simulator: {reported['here_weighted_gain_pct']} % weighted, "
                f"{reported['here_edp_gain_pct']} % EDP (active)"
            )
        lines.append(
            f"| {r['model']} | {r['rate_per_s']:g} | {cfg(o['best'])} | {o['edp_gain_pct']} % | {cfg(p['best'])} | "
            f"{p['objective_gain_pct']} % | {p['edp_gain_pct']} % | {p['total_edp_gain_pct']} % | {paper} |"
        )
    if "camel_picks" in rows[0]["ours"]:
        lines += [
            "",
            "| model | λ (req/s) | camel picks, ours | mean EDP gain | camel picks, paper setting "
            "| mean EDP gain (active energy) |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            o, p = r["ours"], r["paper"]
            lines.append(
                f"| {r['model']} | {r['rate_per_s']:g} | {', '.join(map(cfg, o['camel_picks']))} | "
                f"{o['camel_edp_gain_pct_mean']} % | {', '.join(map(cfg, p['camel_picks']))} | "
                f"{p['camel_edp_gain_pct_mean']} % |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=0, help="camel runs per setting (0: exhaustive grid only)")
    parser.add_argument("--budget", type=int, default=30, help="camel rounds after the baseline round")
    parser.add_argument("--requests", type=int, default=336, help="requests per exhaustive measurement window")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = []
    for model in MODELS:
        space = build_space(open_backends(device="sim", model=model))
        for rate in RATES:
            rows.append(one_case(model, rate, space, requests=args.requests, seeds=args.seeds, budget=args.budget))
    print(markdown(rows) if args.markdown else json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
