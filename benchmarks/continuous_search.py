"""Tuning (clock, slots) under continuous batching on the simulator: each strategy's choice against the oracle.

    python benchmarks/continuous_search.py [--models llama-3.2-1b,qwen2.5-3b] [--rates 0.25,0.5,1,2,4,8]
        [--strategies edpilot,camel,optuna-tpe] [--seeds 5] [--budget 15] [--oracle-requests 600]
        [--oracle-warmup 100] [--check-requests 4000] [--cache oracle.json]

For each model and rate λ (Poisson arrivals, 70 output tokens, the shipped prompts) on the simulated AGX Orin 32GB
(the paper's 7 GPU levels × slots 4, 8, …, 28):

- the oracle: every config serves one long stream through `ContinuousRunner` (`--oracle-warmup` completions to
  reach the steady queue, then `--oracle-requests` measured, the same arrivals for every config); its EDP (total
  energy) is the config's steady-state cost. `--cache FILE` keeps these costs between runs (they take minutes).
- the forecast's error: `steady_continuous` fed each config's step curve as its replay measured it (mean step time
  and energy at each occupancy) and the board's idle power, against the replay (mean latency, energy per request;
  median and worst |error| over the configs that keep up, latency below ρ 0.85), the check that the search prices
  configs right; near capacity (0.85 ≤ ρ < 0.95) against a longer replay (`--check-requests`), and also fed that
  replay's mean step at every occupancy instead (the model before the curve);
- each strategy (`--strategies ''`: none) tunes `tune --batching continuous` for `--budget` rounds of 32
  requests, seeds 0 … n−1; its final choice (what `tune` reports) is scored by the oracle: EDP ratio to the
  oracle's best (1.00 = found it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edpilot.continuous_runner import ContinuousRunner, ServedStep
from edpilot.objective import parse_objective
from edpilot.serving.continuous_queue import steady_continuous
from edpilot.sim import open_sim
from edpilot.space import PAPER_FREQ_LEVELS, Config, ConfigSpace, spread_levels
from edpilot.tuner import SessionSettings, TuningSession, tune
from edpilot.workload import Workload

BOARD = "sim:orin-agx-32gb"
OUTPUT_TOKENS = 70
REQUESTS_PER_ROUND = 32
BATCHES = (4, 8, 12, 16, 20, 24, 28)
NEAR_TOP = 0.95  # past it even a 4000-request replay is far from its steady queue (relaxation ~ D / (1 − √ρ)²)


def workload(rate: float) -> Workload:
    """Poisson arrivals at `rate` req/s, 70 output tokens, the shipped prompts."""
    return Workload(arrivals="poisson", rate_per_s=rate, output_tokens=OUTPUT_TOKENS)


def space() -> ConfigSpace:
    """The paper's grid on the 32GB board."""
    freqs = spread_levels(open_sim(BOARD).device.freqs_mhz(), PAPER_FREQ_LEVELS)
    return ConfigSpace.grid(tuple(freqs), BATCHES)


def replay(model: str, rate: float, config: Config, *, warmup: int, requests: int) -> dict[str, float]:
    """One long stream at `config`: the measured round after the warm-up, and the forecast from its own steps —
    before (the round's mean step at every occupancy) and now (the step curve over occupancy its steps measured)."""
    sim = open_sim(BOARD, model=model, seed=0)
    runner = ContinuousRunner(
        device=sim.device, engine=sim.engine, workload=workload(rate), requests_per_round=warmup, seed=0
    )
    runner.measure(config)
    runner.requests_per_round = requests
    obs = runner.measure(config)
    traffic = workload(rate).traffic(REQUESTS_PER_ROUND)
    idle_w = sim.model.idle_power_w(float(config.freq_mhz or 0.0))
    flat = steady_continuous(
        traffic,
        [config.batch_size],
        step_s=[obs.mean_batch_s],
        step_energy_j=[obs.energy_per_batch_j],
        idle_power_w=idle_w,
    )
    step_s, step_j = step_curve(runner.round_steps, config.batch_size)
    curve = steady_continuous(traffic, [config.batch_size], step_s=step_s, step_energy_j=step_j, idle_power_w=idle_w)
    return {
        "edp": float(obs.edp or np.inf),
        "latency_s": obs.mean_latency_s,
        "energy_j": float(obs.energy_per_request_j or np.nan),
        "keeps_up": float(obs.keeps_up),
        "mean_sequences": float(obs.mean_sequences or np.nan),
        "predicted_latency_s": float(flat.mean_latency_s[0]),
        "predicted_energy_j": float(flat.energy_per_request_j[0]),
        "utilisation": float(curve.utilisation[0]),
        "curve_latency_s": float(curve.mean_latency_s[0]),
        "curve_energy_j": float(curve.energy_per_request_j[0]),
    }


def step_curve(steps: list[ServedStep], slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean step time (s) and energy (J) at each occupancy 1 … slots, as one (1, slots) row each; an occupancy the
    steps never ran at takes the nearest one they did."""
    n = np.array([s.sequences for s in steps])
    time = np.array([s.end_s - s.start_s for s in steps])
    energy = np.array([s.energy_j for s in steps], dtype=float)
    seen = np.array(sorted(set(n.tolist())))
    nearest = seen[np.abs(np.arange(1, slots + 1)[:, None] - seen[None, :]).argmin(axis=1)]
    return (
        np.array([[time[n == k].mean() for k in nearest]]),
        np.array([[energy[n == k].mean() for k in nearest]]),
    )


def oracle(model: str, rate: float, grid: ConfigSpace, args: argparse.Namespace, cache: dict) -> dict[str, dict]:
    """Every config's replayed steady state at (model, rate), from the cache where it holds it; configs near
    capacity (0.85 ≤ ρ < 1) are replayed again for `--check-requests` (their 600-request mean is still noisy) under
    'check'."""
    key = f"{model}|{rate:g}|{args.oracle_warmup}|{args.oracle_requests}|{args.check_requests}"
    if key not in cache:
        truth = {str(c): replay(model, rate, c, warmup=args.oracle_warmup, requests=args.oracle_requests) for c in grid}
        for c in grid:
            if 0.85 <= truth[str(c)]["utilisation"] < 1.0:
                check = replay(model, rate, c, warmup=args.oracle_warmup, requests=args.check_requests)
                truth[str(c)]["check"] = check  # type: ignore[assignment]
        cache[key] = truth
        if args.cache:
            Path(args.cache).write_text(json.dumps(cache))
    return cache[key]


def choose(model: str, rate: float, grid: ConfigSpace, strategy: str, seed: int, budget: int) -> Config:
    """What `tune --batching continuous --strategy S` chooses after `budget` rounds."""
    sim = open_sim(BOARD, model=model, seed=seed)
    settings = SessionSettings(
        space=grid,
        objective=parse_objective("edp"),
        strategy=strategy,
        baseline=grid.baseline(),
        seed=seed,
        budget=budget,
        batching="continuous",
    )
    session = TuningSession(settings, workload(rate).traffic(REQUESTS_PER_ROUND))
    runner = ContinuousRunner(
        device=sim.device,
        engine=sim.engine,
        workload=workload(rate),
        requests_per_round=REQUESTS_PER_ROUND,
        seed=seed,
    )
    return tune(runner=runner, session=session, budget=budget).best.config


def spread(errors: list[float]) -> str:
    """'median / worst' of relative errors, in percent ('—' when there are none)."""
    return f"{100 * np.median(errors):.1f} % / {100 * max(errors):.1f} %" if errors else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="llama-3.2-1b,qwen2.5-3b")
    parser.add_argument("--rates", default="0.25,0.5,1,2,4,8")
    parser.add_argument("--strategies", default="edpilot,camel,optuna-tpe")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=15)
    parser.add_argument("--oracle-requests", type=int, default=600)
    parser.add_argument("--oracle-warmup", type=int, default=100)
    parser.add_argument("--check-requests", type=int, default=4000)
    parser.add_argument("--cache", default=None)
    args = parser.parse_args()
    cache = json.loads(Path(args.cache).read_text()) if args.cache and Path(args.cache).exists() else {}
    grid = space()
    strategies = [s for s in args.strategies.split(",") if s]
    ratios: dict[str, list[float]] = {s: [] for s in strategies}
    print(
        "| model | λ (req/s) | oracle (MHz, slots) | latency error median / worst at ρ < 0.85 | "
        "latency error at ρ 0.85–0.95, mean step → curve | energy error median / worst | "
        + " | ".join(f"{s} median / worst" for s in strategies)
        + " |"
    )
    print("| --- | --- | --- | --- | --- | --- | " + " | ".join("---" for _ in strategies) + " |")
    for model in args.models.split(","):
        for rate in (float(r) for r in args.rates.split(",")):
            truth = oracle(model, rate, grid, args, cache)
            edp = {c: truth[str(c)]["edp"] for c in grid}
            best = min(edp, key=edp.__getitem__)
            stable = [v for v in truth.values() if v["utilisation"] < 1.0 and np.isfinite(v["edp"])]
            lat_err = [abs(v["curve_latency_s"] / v["latency_s"] - 1.0) for v in stable if v["utilisation"] < 0.85]
            e_err = [abs(v["curve_energy_j"] / v["energy_j"] - 1.0) for v in stable]
            near = [v["check"] for v in truth.values() if "check" in v and v["check"]["utilisation"] < NEAR_TOP]
            flat_near = [abs(v["predicted_latency_s"] / v["latency_s"] - 1.0) for v in near]
            curve_near = [abs(v["curve_latency_s"] / v["latency_s"] - 1.0) for v in near]
            near_cell = (
                f"{100 * max(flat_near):.1f} % → {100 * max(curve_near):.1f} % (worst of {len(near)})" if near else "—"
            )
            cells = []
            for strategy in strategies:
                got = [
                    edp[choose(model, rate, grid, strategy, seed, args.budget)] / edp[best]
                    for seed in range(args.seeds)
                ]
                ratios[strategy] += got
                cells.append(f"{np.median(got):.3f} / {max(got):.3f}")
            print(
                f"| {model} | {rate:g} | ({best.freq_mhz:g}, {best.batch_size}) | "
                f"{spread(lat_err)} | {near_cell} | {spread(e_err)} | " + " | ".join(cells) + " |",
                flush=True,
            )
    for strategy, got in ratios.items():
        within = np.mean(np.array(got) <= 1.01)
        print(f"{strategy}: median {np.median(got):.3f}, worst {max(got):.3f}, within 1 % {100 * within:.0f} %")


if __name__ == "__main__":
    main()
