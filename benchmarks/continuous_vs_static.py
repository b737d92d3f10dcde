"""Static vs continuous batching on the simulated AGX Orin 32GB: the best config's EDP, latency and TTFT per rate.

    python benchmarks/continuous_vs_static.py [--models llama-3.2-1b,qwen2.5-3b] [--rates 0.25,0.5,1,2,4,8]
        [--batches 1,2,4,8,16,28] [--requests 400] [--warmup 80] [--seed 0] [--max-wait-s S]

For each model, rate λ (Poisson arrivals, 70 output tokens, the shipped prompts) and batching, every config of the
grid (the paper's 7 GPU levels × `--batches`; for continuous, the batch size is the most concurrent sequences)
serves the same stream (the same arrivals and prompts for both batchings and every config) of `--warmup` +
`--requests` requests in steady state: the first `--warmup` completions are not counted (the queue fills to its
steady level), the next `--requests` are measured (EDP over the board's total energy, as `tune` does by default).
With `--max-wait-s`, a partial static batch leaves once its oldest request has waited that long (`serve`'s 5 s).
A config that cannot keep up shows it by a growing queue, so its EDP is large. The table gives each batching's
best config by EDP, its mean and p95 latency and p95 TTFT, and the ratio continuous / static of the best EDPs.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np

from edpilot.continuous_runner import ServedRequest, ServedStep, summarize_sequences
from edpilot.objective import Observation
from edpilot.runner import ServedBatch, run_batch, summarize
from edpilot.serving.batcher import StaticBatcher
from edpilot.serving.continuous import ContinuousScheduler
from edpilot.serving.window import EnergyWindow
from edpilot.sim import open_sim
from edpilot.space import PAPER_FREQ_LEVELS, spread_levels
from edpilot.workload import Request, Workload

OUTPUT_TOKENS = 70
BOARD = "sim:orin-agx-32gb"


def stream(workload: Workload, count: int, seed: int) -> list[Request]:
    """`count` requests of one Poisson stream (absolute arrival times from 0)."""
    return workload.requests(count, np.random.default_rng(seed))


def static_steady(
    model: str,
    rate: float,
    freq_mhz: float,
    batch: int,
    *,
    warmup: int,
    requests: int,
    seed: int,
    max_wait_s: float | None = None,
):
    """Serve one stream through a static batcher (a partial batch leaves after `max_wait_s`, as `serve` does);
    measure the completions after the warm-up."""
    sim = open_sim(BOARD, model=model, seed=seed)
    sim.device.set_freq_mhz(freq_mhz)
    todo = stream(
        Workload(arrivals="poisson", rate_per_s=rate, output_tokens=OUTPUT_TOKENS), warmup + requests + 2 * batch, seed
    )
    batcher: StaticBatcher[Request] = StaticBatcher(batch, max_wait_s=max_wait_s)
    served: list[ServedBatch] = []
    completed, i, window = 0, 0, None
    while window is None or sum(len(b.requests) for b in served) < requests:
        if window is None and completed >= warmup:
            window = EnergyWindow(sim.device, sim.clock).begin()
        now_s = sim.clock.now_s()
        while i < len(todo) and todo[i].arrival_s <= now_s:
            batcher.offer(todo[i], now_s)
            i += 1
        ready = batcher.poll(now_s) or (batcher.flush() if i == len(todo) else None)
        if ready:
            done = run_batch(ready, engine=sim.engine, device=sim.device, clock=sim.clock)
            completed += len(ready)
            if window is not None:
                served.append(done)
            continue
        if i == len(todo):  # the stream ran out: what was served is the window
            break
        deadline_s = batcher.next_deadline_s()
        sim.clock.sleep_until(todo[i].arrival_s if deadline_s is None else min(todo[i].arrival_s, deadline_s))
    window.end()
    return summarize(served, window=window, energy_scope="total", batch_size=batch)


def continuous_steady(model: str, rate: float, freq_mhz: float, slots: int, *, warmup: int, requests: int, seed: int):
    """The same stream (the same arrivals and prompts as `static_steady`) through the continuous scheduler, step by
    step; measure the completions after the warm-up."""
    sim = open_sim(BOARD, model=model, seed=seed)
    sim.device.set_freq_mhz(freq_mhz)
    todo = stream(
        Workload(arrivals="poisson", rate_per_s=rate, output_tokens=OUTPUT_TOKENS), warmup + requests + 2 * slots, seed
    )
    scheduler: ContinuousScheduler[Request] = ContinuousScheduler(slots)
    joined: dict[int, tuple[Request, float]] = {}
    served: list[ServedRequest] = []
    steps: list[ServedStep] = []
    completed, i, window = 0, 0, None
    while window is None or len(served) < requests:
        if window is None and completed >= warmup:
            window = EnergyWindow(sim.device, sim.clock).begin()
        now_s = sim.clock.now_s()
        while i < len(todo) and todo[i].arrival_s <= now_s:
            scheduler.offer(todo[i], now_s)
            i += 1
        for r in scheduler.poll(now_s):
            sim.engine.add(r)
            joined[r.request_id] = (r, now_s)
        if sim.engine.running() == 0:
            if i == len(todo):  # the stream ran out: what was served is the window
                break
            sim.clock.sleep_until(todo[i].arrival_s)
            continue
        with EnergyWindow(sim.device, sim.clock) as w:
            step = sim.engine.step()
        scheduler.release(len(step.finished))
        completed += len(step.finished)
        if window is not None:
            steps.append(ServedStep(w.start_s, w.end_s, w.energy_j, scheduler.running))
            served += [ServedRequest(*joined[rid], w.end_s, c) for rid, c in step.finished.items()]
    window.end()
    return summarize_sequences(served, steps, window=window, energy_scope="total", keeps_up=True)


def best(results: dict[tuple[float, int], Observation]) -> tuple[tuple[float, int], Observation]:
    """The config with the lowest EDP."""
    key = min(results, key=lambda k: results[k].edp)
    return key, results[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="llama-3.2-1b,qwen2.5-3b")
    parser.add_argument("--rates", default="0.25,0.5,1,2,4,8")
    parser.add_argument("--batches", default="1,2,4,8,16,28")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-wait-s", type=float, default=None, help="static: a partial batch leaves after this")
    args = parser.parse_args()
    freqs = spread_levels(open_sim(BOARD).device.freqs_mhz(), PAPER_FREQ_LEVELS)
    batches = [int(b) for b in args.batches.split(",")]
    print(
        "| model | λ (req/s) | batching | best (MHz, b) | EDP (J·s) | mean latency (s) | p95 latency (s) |"
        " p95 TTFT (s) | EDP continuous / static |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in args.models.split(","):
        for rate in (float(r) for r in args.rates.split(",")):
            rows = {}
            static = partial(static_steady, max_wait_s=args.max_wait_s)
            for kind, measure in (("static", static), ("continuous", continuous_steady)):
                results = {
                    (f, b): measure(model, rate, f, b, warmup=args.warmup, requests=args.requests, seed=args.seed)
                    for f in freqs
                    for b in batches
                }
                rows[kind] = best(results)
            ratio = rows["continuous"][1].edp / rows["static"][1].edp
            for kind, ((f, b), obs) in rows.items():
                ttft = "–" if obs.p95_ttft_s is None else f"{obs.p95_ttft_s:.2f}"
                print(
                    f"| {model} | {rate:g} | {kind} | ({f:g}, {b}) | {obs.edp:.3g} | {obs.mean_latency_s:.2f} |"
                    f" {obs.p95_latency_s:.2f} | {ttft} | {f'{ratio:.2f}' if kind == 'continuous' else ''} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
