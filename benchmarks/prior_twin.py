"""Warm start on a twin board: rounds to within 5 % of the steady-state oracle with and without `--prior`.

    python benchmarks/prior_twin.py [--seeds 10] [--budget 15] [--prior-budget 30] [--board-sd 0.05] [--plant 1.0]
                                    [--csv FILE]

Per scenario and seed:
- board A: a simulated surface (an analytic preset's noise-free batch costs, or a synthetic surface of the
  search benchmark) written as a profile table, 6 samples per config with 2 % noise around the truth. A's run
  log comes from the real command: `edpilot tune --device sim --profile A.csv --output A.jsonl` (budget
  `--prior-budget`, tune's default 30).
- board B, its twin: A's per-config batch time and batch energy each × an independent lognormal factor
  (sd 5 %, `--board-sd`), idle power × one more, the same noise; same device name and model, so
  `--prior A.jsonl` is accepted. `--plant 1.2` makes the config A chose 20 % slower and costlier on B as well
  (a prior that is wrong where it matters most).
- B is tuned for `--budget` search rounds (the search benchmark's 15) with and without `--prior A.jsonl`, on the
  same seed. Each round's incumbent (`session.best()`) is scored against B's steady-state oracle (bench.oracle).

Reported per scenario and overall: the median rounds to reach within 5 % for good (round 0 is the baseline; a
run that ends outside counts as budget + 1), the final ratio at the budget, and the mean over search rounds of
the served config's steady-state cost over the oracle, minus 1 (what exploring cost the users), over the rounds
served at a config that keeps up; the rounds at one that cannot (bounded probes) are counted beside it.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edpilot.backends import build_space, open_backends
from edpilot.bench.oracle import Hardware, Truth, true_hardware, truth_at
from edpilot.bench.scenarios import SYNTHETIC
from edpilot.objective import parse_objective
from edpilot.run import SearchRequest, start_session
from edpilot.runlog import RunLog, read_run_log
from edpilot.runner import Runner
from edpilot.space import Config
from edpilot.tuner import play_round
from edpilot.workload import Workload

PROMPT_TOKENS = 100
OUTPUT_TOKENS = 70
SAMPLES = 6  # profile rows per config
SAMPLE_NOISE = 0.02  # per-batch noise (log sd) of both boards
BOARD_SD = 0.05  # the twin's per-config difference (log sd), independent for time and energy
WITHIN = 1.05


@dataclass(frozen=True)
class Twin:
    """One scenario: where board A's truth comes from, and the traffic both boards serve."""

    name: str
    arrivals: str
    rate_per_s: float
    model: str = "llama-3.2-1b"
    board: str | None = None  # an analytic preset
    synthetic: str | None = None  # a surface of bench.scenarios.SYNTHETIC


TWINS = (
    Twin("llama-32-u1", "uniform", 1.0, board="orin-agx-32gb"),
    Twin("qwen-64-p2", "poisson", 2.0, model="qwen2.5-3b", board="orin-agx-64gb"),
    Twin("llama-64-p4", "poisson", 4.0, board="orin-agx-64gb"),
    Twin("lone-p1", "poisson", 1.0, synthetic="lone"),
    Twin("throttle-p3", "poisson", 3.0, synthetic="throttle"),
    Twin("edge-u1.5", "uniform", 1.5, synthetic="edge"),
    Twin("power-limit-p4", "poisson", 4.0, synthetic="power-limit"),
)

Truth3 = tuple[list[Config], np.ndarray, np.ndarray, float]  # configs, batch time (s), batch energy (J), idle (W)


def board_a(twin: Twin) -> Truth3:
    """Board A's noise-free batch time and energy per config, and its idle power."""
    if twin.synthetic is not None:
        spec = SYNTHETIC[twin.synthetic]
        configs = [Config.of(int(b), gpu_mhz=float(f)) for f in spec.freqs_mhz for b in spec.batch_sizes]
        t, e = np.array([spec.surface(c.freq_mhz, c.batch_size) for c in configs]).T  # type: ignore[arg-type]
        return configs, t, e, spec.idle_power_w
    backends = open_backends(device=f"sim:{twin.board}", model=twin.model)
    space = build_space(backends)
    hw = true_hardware(backends, space, prompt_tokens=PROMPT_TOKENS, output_tokens=OUTPUT_TOKENS)
    return list(space.configs), hw.service_s, hw.energy_per_batch_j, float(np.mean(hw.idle_power_w))


def write_board(path: Path, twin: Twin, truth: Truth3, rng: np.random.Generator) -> None:
    """A profile table of `truth`: SAMPLES rows per config whose mean is exactly the truth."""
    from edpilot.sim.profile import ProfileRow, write_profile

    configs, t, e, idle_w = truth
    rows = []
    for c, ti, ei in zip(configs, t, e):
        noise = np.exp(rng.normal(0.0, SAMPLE_NOISE, size=(SAMPLES, 2)))
        noise[:, 1] *= noise[:, 0]
        noise /= noise.mean(axis=0)
        rows += [ProfileRow(float(c.freq_mhz or 0.0), c.batch_size, ti * kt, ei * ke) for kt, ke in noise]
    metadata = {
        "device": f"twin-{twin.name}",
        "model": twin.model,
        "prompt_tokens": PROMPT_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
        "idle_power_w": f"{idle_w:.4f}",
    }
    write_profile(path, metadata, rows)


def twin_of(truth: Truth3, rng: np.random.Generator, board_sd: float = BOARD_SD) -> Truth3:
    """Board B: each config's batch time and energy × independent lognormal(board_sd), idle power × one more."""
    configs, t, e, idle_w = truth
    k = np.exp(rng.normal(0.0, board_sd, size=(2, len(configs))))
    return configs, t * k[0], e * k[1], float(idle_w * np.exp(rng.normal(0.0, board_sd)))


def planted(truth: Truth3, config: Config, factor: float) -> Truth3:
    """`truth` with `config`'s batch time and energy × `factor` (A's choice made worse on B)."""
    configs, t, e, idle_w = truth
    k = np.where([c == config for c in configs], factor, 1.0)
    return configs, t * k, e * k, idle_w


def tune_a(profile: Path, out: Path, twin: Twin, *, seed: int, budget: int) -> None:
    """Board A's run log, written by the real `edpilot tune`."""
    cmd = [sys.executable, "-m", "edpilot", "tune", "--device", "sim", "--profile", str(profile)]
    cmd += ["--model", twin.model, "--arrivals", twin.arrivals, "--arrival-rate", f"{twin.rate_per_s:g}"]
    cmd += ["--prompt-tokens", str(PROMPT_TOKENS), "--output-tokens", str(OUTPUT_TOKENS)]
    cmd += ["--budget", str(budget), "--seed", str(seed), "--output", str(out), "--overwrite", "--json"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def oracle(truth: Truth3, profile: Path, workload: Workload) -> Truth:
    """B's steady-state oracle over the grid its profile gives, at the scenario's traffic (EDP, total energy)."""
    configs, t, e, idle_w = truth
    space = build_space(open_backends(device="sim", profile=str(profile)))
    idx = [configs.index(c) for c in space.configs]
    hw = Hardware(t[idx], e[idx], np.full(len(idx), idle_w))
    return truth_at(
        hw,
        space,
        workload.traffic(32),
        objective=parse_objective("edp"),
        energy_scope="total",
        baseline=space.baseline(),
    )


def tune_b(profile: Path, twin: Twin, truth: Truth, *, seed: int, budget: int, prior: Path | None) -> dict[str, float]:
    """Board B tuned for `budget` search rounds, scored round by round against its oracle."""
    backends = open_backends(device="sim", profile=str(profile), model=twin.model, seed=seed)
    workload = Workload(
        arrivals=twin.arrivals,  # type: ignore[arg-type]
        rate_per_s=twin.rate_per_s,
        output_tokens=OUTPUT_TOKENS,
        prompt_tokens=PROMPT_TOKENS,
    )
    search = SearchRequest(budget=budget, seed=seed, prior=prior)
    traffic = workload.traffic(search.requests_per_round)
    session = start_session(
        backends,
        search,
        traffic,
        run_log=RunLog(None),
        model=twin.model,
        workload_name=twin.arrivals,
        output_tokens=traffic.output_tokens,
    )
    runner = Runner(device=backends.device, engine=backends.engine, workload=workload, seed=seed)
    incumbent, served = [], []
    for _ in range(budget + 1):
        record = play_round(runner, session)
        served.append(truth.ratio(record.config))
        incumbent.append(truth.ratio(session.best()))
    return {
        "rounds_to_5pct": rounds_to_within(incumbent, budget),
        "final_ratio": incumbent[-1],
        "mean_regret": float(np.mean([x for x in served[1:] if np.isfinite(x)]) - 1.0),
        "unsteady_rounds": float(sum(not np.isfinite(x) for x in served[1:])),
        "round1_ratio": incumbent[1],
    }


def rounds_to_within(ratios: Sequence[float], budget: int) -> float:
    """First round from which every incumbent stays within 5 % (budget + 1 when the last one is not)."""
    if ratios[-1] > WITHIN:
        return float(budget + 1)
    k = len(ratios)
    while k > 0 and ratios[k - 1] <= WITHIN:
        k -= 1
    return float(k)


def run(
    twins: Sequence[Twin],
    *,
    seeds: int,
    budget: int,
    prior_budget: int,
    board_sd: float = BOARD_SD,
    plant: float = 1.0,
    log: Callable[[str], None],
) -> list[dict]:
    """Every scenario × seed: B without and with A's prior; one row each."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="edpilot-prior-") as tmp:
        for twin in twins:
            a_truth = board_a(twin)
            for seed in range(seeds):
                rng = np.random.default_rng([seed, sum(map(ord, twin.name))])
                b_truth = twin_of(a_truth, rng, board_sd)
                a_csv, b_csv, a_log = (Path(tmp) / f"{twin.name}-{seed}-{x}" for x in ("a.csv", "b.csv", "a.jsonl"))
                write_board(a_csv, twin, a_truth, rng)
                tune_a(a_csv, a_log, twin, seed=seed + 1000, budget=prior_budget)
                if plant != 1.0:
                    b_truth = planted(b_truth, read_run_log(a_log).summary.best_config, plant)  # type: ignore[union-attr]
                write_board(b_csv, twin, b_truth, rng)
                workload = Workload(
                    arrivals=twin.arrivals,  # type: ignore[arg-type]
                    rate_per_s=twin.rate_per_s,
                    output_tokens=OUTPUT_TOKENS,
                    prompt_tokens=PROMPT_TOKENS,
                )
                truth = oracle(b_truth, b_csv, workload)
                for label, prior in (("cold", None), ("prior", a_log)):
                    result = tune_b(b_csv, twin, truth, seed=seed, budget=budget, prior=prior)
                    rows.append({"scenario": twin.name, "seed": seed, "start": label, **result})
            log(f"{twin.name}: done")
    return rows


def summary(rows: list[dict], budget: int) -> str:
    """A markdown table: per scenario and overall, cold against prior."""
    lines = [
        "| scenario | start | rounds to 5 % (median) | mean | round-1 within 5 % | final median | final worst "
        "| mean regret | rounds past capacity |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = [*dict.fromkeys(r["scenario"] for r in rows), "all"]
    for name in names:
        for start in ("cold", "prior"):
            sel = [r for r in rows if r["start"] == start and name in ("all", r["scenario"])]
            k = np.array([r["rounds_to_5pct"] for r in sel])
            final = np.array([r["final_ratio"] for r in sel])
            first = np.array([r["round1_ratio"] for r in sel])
            regret = np.array([r["mean_regret"] for r in sel])
            unsteady = np.array([r["unsteady_rounds"] for r in sel])
            lines.append(
                f"| {name} | {start} | {np.median(k):g} | {k.mean():.2f} | {np.mean(first <= WITHIN):.0%} "
                f"| {np.median(final):.3f} | {final.max():.3f} | {regret.mean():.3f} | {unsteady.mean():.2f} |"
            )
    return "\n".join(lines) + f"\n\n(a run that never stays within 5 % counts as {budget + 1} rounds)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=15, help="search rounds of board B")
    parser.add_argument("--prior-budget", type=int, default=30, help="search rounds of board A (tune's default)")
    parser.add_argument("--board-sd", type=float, default=BOARD_SD, help="B's per-config difference (log sd)")
    parser.add_argument("--plant", type=float, default=1.0, help="B's time and energy × this at A's chosen config")
    parser.add_argument("--scenarios", default=None, help="comma list of scenario names (default: all)")
    parser.add_argument("--csv", type=Path, default=None, help="also write every run as a CSV row")
    args = parser.parse_args()
    twins = [t for t in TWINS if args.scenarios is None or t.name in args.scenarios.split(",")]
    rows = run(
        twins,
        seeds=args.seeds,
        budget=args.budget,
        prior_budget=args.prior_budget,
        board_sd=args.board_sd,
        plant=args.plant,
        log=lambda s: print(s, file=sys.stderr),
    )
    if args.csv:
        with args.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(summary(rows, args.budget))


if __name__ == "__main__":
    main()
