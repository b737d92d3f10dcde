"""How often `serve`'s traffic estimator re-plans on steady traffic, and how fast it finds a 4× rate change.

    python benchmarks/drift_detect.py [--rates 1,10,100] [--arrivals 20000] [--seeds 20]
        [--young-histories 16,32,64,128] [--young-seeds 30] [--young-starts 200]

Simulated arrival streams (clock seconds), fed one arrival at a time to `TrafficEstimator.observe`:
- `uniform`: every 1/λ s;  `poisson`: exponential gaps;
- `jittered`: uniform arrivals stamped late by U(0, 1/λ) (HTTP and event-loop jitter), in arrival order;
- `bursty`: closed-loop clients released together when a batch ends: bursts of 8 every 8/λ s, each arrival
  stamped late by U(0, 0.1/λ);
- `stalled`: an event loop that stalls for half of every 24/λ s and stamps what arrived meanwhile at once;
- `gamma`: gamma-distributed gaps of shape ½ (coefficient of variation 1.41: Poisson's overdispersed cousin);
- `quiet-gap` (each of the above): a 10 s pause between two load phases at the same rate.
False re-plans: `drift` changes reported on steady streams, per 10 000 arrivals (target ≤ 1). Detection:
arrivals after a ×4 or ×¼ change until the drift is reported (target ≤ 50; the worst over seeds is shown).
A young server: the same change after only 16–128 arrivals of history (`--young-histories`, `--young-seeds`;
missed: no drift within 200 arrivals), and how many of `--young-starts` steady starts (200 arrivals each, the
young test's whole span) raise a false drift, without and with a 10 s quiet pause at arrival 64.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from edpilot.server.estimator import TrafficEstimator

QUIET_GAP_S = 10.0
BURST = 8
GAMMA_SHAPE = 0.5
YOUNG_ARRIVALS = 200  # a young start: the young test runs until 160 gaps stand
YOUNG_QUIET_AT = 64

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


def gamma(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.gamma(GAMMA_SHAPE, 1.0 / (rate * GAMMA_SHAPE), size=n)


STREAMS: dict[str, Stream] = {
    "uniform": uniform,
    "poisson": poisson,
    "jittered": jittered,
    "bursty": bursty,
    "stalled": stalled,
    "gamma": gamma,
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


def young_false_starts(stream: Stream, rate: float, starts: int, *, quiet_gap: bool) -> int:
    """Steady starts (of `starts`, `YOUNG_ARRIVALS` arrivals each) that raised a drift."""
    raised = 0
    for seed in range(starts):
        gaps = stream(rate, YOUNG_ARRIVALS, np.random.default_rng(5000 + seed))
        if quiet_gap:
            gaps[YOUNG_QUIET_AT] += QUIET_GAP_S
        raised += bool(run(gaps)[0])
    return raised


def detection(
    stream: Stream, rate: float, factor: float, seeds: int, *, history: int = 400, after: int = 400
) -> tuple[float, float, int]:
    """Median and worst arrivals after a ×`factor` change (after `history` arrivals) until the drift, and runs that
    never found it (within `after` arrivals)."""
    delays, missed = [], 0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        est = TrafficEstimator(requests_per_round=32)
        _, t = run(stream(rate, history, rng), est=est)
        drifts, _ = run(stream(rate * factor, after, rng), start_s=t, est=est)
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
    parser.add_argument("--young-histories", default="16,32,64,128", help="arrivals before a young server's change")
    parser.add_argument("--young-seeds", type=int, default=30, help="seeds per young detection cell")
    parser.add_argument("--young-starts", type=int, default=200, help="steady young starts per stream and rate")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    steady_table(rates, args.arrivals, args.seeds)
    young_table(rates, [int(h) for h in args.young_histories.split(",")], args.young_seeds, args.young_starts)


def cell(found: tuple[float, float, int]) -> str:
    median, worst, missed = found
    if missed and np.isnan(median):
        return f"none ({missed} missed)"
    return f"{median:.0f} / {worst:.0f}" + (f" ({missed} missed)" if missed else "")


def steady_table(rates: list[float], arrivals: int, seeds: int) -> None:
    print(
        "| stream | rate (req/s) | false re-plans / 10 000 | with a 10 s quiet gap | ×4 found after (median / worst) "
        "| ×¼ found after (median / worst) |"
    )
    print("|---|---|---|---|---|---|")
    for name, stream in STREAMS.items():
        for rate in rates:
            steady = false_replans(stream, rate, arrivals, seeds, quiet_gap=False)
            gap = false_replans(stream, rate, arrivals // 4, seeds, quiet_gap=True)
            up, down = (cell(detection(stream, rate, factor, seeds)) for factor in (4.0, 0.25))
            print(f"| {name} | {rate:g} | {steady:.2f} | {gap:.2f} | {up} | {down} |", flush=True)


def young_table(rates: list[float], histories: list[int], seeds: int, starts: int) -> None:
    """A young server: detection after a short history, and false drifts in the first arrivals."""
    print(
        f"\n| stream | rate (req/s) | history (arrivals) | ×4 found after (median / worst) | ×¼ found after "
        f"(median / worst) | steady starts with a false drift (of {starts}) | with a 10 s quiet gap |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, stream in STREAMS.items():
        for rate in rates:
            false = young_false_starts(stream, rate, starts, quiet_gap=False)
            gap = young_false_starts(stream, rate, starts, quiet_gap=True)
            for i, history in enumerate(histories):
                up, down = (
                    cell(detection(stream, rate, factor, seeds, history=history, after=200)) for factor in (4.0, 0.25)
                )
                starts_cells = f"{false} | {gap}" if i == 0 else " | "
                print(f"| {name} | {rate:g} | {history} | {up} | {down} | {starts_cells} |", flush=True)


if __name__ == "__main__":
    main()
