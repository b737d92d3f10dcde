"""How often `serve`'s traffic estimator re-plans on steady traffic, and how fast it finds a 4× rate change.

    python benchmarks/drift_detect.py [--rates 1,10,100] [--arrivals 20000] [--seeds 20]

Simulated arrival streams (clock seconds), fed one arrival at a time to `TrafficEstimator.observe`:
- `uniform`: every 1/λ s;  `poisson`: exponential gaps;
- `jittered`: uniform arrivals stamped late by U(0, 1/λ) (HTTP and event-loop jitter), in arrival order;
- `bursty`: closed-loop clients released together when a batch ends: bursts of 8 every 8/λ s, each arrival
  stamped late by U(0, 0.1/λ);
- `stalled`: an event loop that stalls for half of every 24/λ s and stamps what arrived meanwhile at once;
- `quiet-gap` (each of the above): a 10 s pause between two load phases at the same rate.
False re-plans: `drift` changes reported on steady streams, per 10 000 arrivals (target ≤ 1). Detection:
arrivals after a ×4 or ×¼ change until the drift is reported (target ≤ 50; the worst over seeds is shown).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from edpilot.server.estimator import TrafficEstimator

QUIET_GAP_S = 10.0
BURST = 8

Stream = Callable[[float, int, np.random.Generator], np.ndarray]


def uniform(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.full(n, 1.0 / rate)


def poisson(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.exponential(1.0 / rate, size=n)


def jittered(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.sort(np.arange(1, n + 1) / rate + rng.uniform(0.0, 1.0 / rate, size=n))
    return np.diff(t, prepend=0.0)


def bursty(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    release = (np.arange(n) // BURST + 1) * BURST / rate
    t = np.sort(release + rng.uniform(0.0, 0.1 / rate, size=n))
    return np.diff(t, prepend=0.0)


def stalled(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    period_s = 24.0 / rate
    t = np.cumsum(rng.exponential(1.0 / rate, size=n))
    phase = np.mod(t, period_s)
    t = np.where(phase < period_s / 2, t - phase + period_s / 2, t)  # held until the stall ends
    return np.diff(np.sort(t), prepend=0.0)


STREAMS: dict[str, Stream] = {
    "uniform": uniform,
    "poisson": poisson,
    "jittered": jittered,
    "bursty": bursty,
    "stalled": stalled,
}


def run(gaps_s: np.ndarray, *, start_s: float = 0.0, est: TrafficEstimator | None = None) -> tuple[list[int], float]:
    """Indices of the arrivals at which a drift was reported, and the last arrival time."""
    est = est or TrafficEstimator(requests_per_round=32)
    drifts, t = [], start_s
    for i, gap in enumerate(gaps_s):
        t += float(gap)
        change = est.observe(t, prompt_tokens=100, output_tokens=70)
        if change is not None and change.kind == "drift":
            drifts.append(i)
    return drifts, t


def false_replans(stream: Stream, rate: float, arrivals: int, seeds: int, *, quiet_gap: bool) -> float:
    """Drifts reported per 10 000 steady arrivals."""
    count = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        gaps = stream(rate, arrivals, rng)
        if quiet_gap:
            gaps[arrivals // 2] += QUIET_GAP_S
        count += len(run(gaps)[0])
    return 1e4 * count / (arrivals * seeds)


def detection(stream: Stream, rate: float, factor: float, seeds: int) -> tuple[float, float, int]:
    """Median and worst arrivals after a ×`factor` change until the drift, and runs that never found it."""
    delays, missed = [], 0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        est = TrafficEstimator(requests_per_round=32)
        _, t = run(stream(rate, 400, rng), est=est)
        drifts, _ = run(stream(rate * factor, 400, rng), start_s=t, est=est)
        if drifts:
            delays.append(drifts[0] + 1)
        else:
            missed += 1
    if not delays:
        return float("nan"), float("nan"), missed
    return float(np.median(delays)), float(max(delays)), missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1,10,100", help="arrival rates (req/s)")
    parser.add_argument("--arrivals", type=int, default=20000, help="steady arrivals per stream and seed")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    print(
        "| stream | rate (req/s) | false re-plans / 10 000 | with a 10 s quiet gap | ×4 found after (median / worst) "
        "| ×¼ found after (median / worst) |"
    )
    print("|---|---|---|---|---|---|")
    for name, stream in STREAMS.items():
        for rate in rates:
            steady = false_replans(stream, rate, args.arrivals, args.seeds, quiet_gap=False)
            gap = false_replans(stream, rate, args.arrivals // 4, args.seeds, quiet_gap=True)
            up = detection(stream, rate, 4.0, args.seeds)
            down = detection(stream, rate, 0.25, args.seeds)
            cells = [f"{m:.0f} / {w:.0f}" + (f" ({k} missed)" if k else "") for m, w, k in (up, down)]
            print(f"| {name} | {rate:g} | {steady:.2f} | {gap:.2f} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
