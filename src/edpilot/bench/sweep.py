"""The search benchmark: strategies × scenarios × seeds on the simulator, scored against the exact oracle.

Each run is a real simulated tuning session (`TuningSession` + `Runner`): the baseline round, then
`budget = min(15, grid / 4)` search rounds; drift scenarios then change the arrival rate (workload and
`TuningSession.set_traffic`) and run `drift_rounds` more rounds per change. Per round it records the
served config's expected cost and the incumbent's (`session.best()`) over the oracle at that traffic. With
outside tables (`--oracle-file`, bench.oracle_file) a scenario's rates that a table gives are scored by it.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from edpilot.backends import build_space, open_backends
from edpilot.bench.oracle import Hardware, Truth, true_hardware, truth_at
from edpilot.bench.oracle_file import Costs, OracleTables, TableTruth, table_at, table_truth
from edpilot.bench.scenarios import OUTPUT_TOKENS, PROMPT_TOKENS, Scenario, write_synthetic
from edpilot.objective import parse_objective
from edpilot.runner import Runner
from edpilot.space import ConfigSpace
from edpilot.tuner import SessionSettings, TuningSession
from edpilot.workload import Workload

log = logging.getLogger(__name__)

STRATEGIES = ("edpilot", "camel", "grid", "random", "baseline")
WITHIN = 1.05  # "within 5 % of the oracle"
REQUESTS_PER_ROUND = 32


@dataclass(frozen=True)
class RunResult:
    """One strategy on one scenario and seed: the CSV row, and per-round ratios to the oracle."""

    row: dict[str, object]
    served: list[float]
    incumbent: list[float]


def budget_for(space: ConfigSpace) -> int:
    """Search rounds: a quarter of the grid, never more than 15, at least 1."""
    return max(1, min(15, len(space) // 4))


@lru_cache(maxsize=8)
def _profile_path(name: str) -> str:
    return str(write_synthetic(name, Path(tempfile.mkdtemp(prefix="edpilot-bench-"))))


def _open(scn: Scenario, seed: int):  # noqa: ANN202 - Backends
    profile = _profile_path(scn.synthetic) if scn.synthetic else scn.profile
    board = "sim" if profile else f"sim:{scn.board}"
    return open_backends(device=board, model=scn.model, profile=profile, seed=seed)


def _workload(scn: Scenario, rate_per_s: float) -> Workload:
    return Workload(
        arrivals=scn.arrivals,  # type: ignore[arg-type]
        rate_per_s=rate_per_s,
        output_tokens=OUTPUT_TOKENS,
        prompt_tokens=PROMPT_TOKENS,
    )


@lru_cache(maxsize=4)
def _hardware(scn: Scenario) -> tuple[ConfigSpace, Hardware]:
    backends = _open(scn, 0)
    space = build_space(backends, freqs=scn.freqs, batches=scn.batches)
    return space, true_hardware(backends, space, prompt_tokens=PROMPT_TOKENS, output_tokens=OUTPUT_TOKENS)


@lru_cache(maxsize=16)
def scenario_truth(scn: Scenario, rate_per_s: float) -> tuple[Truth, float | None, float | None]:
    """The oracle at one rate, with the constraints the scenario sets (relative to its unconstrained optimum)."""
    space, hw = _hardware(scn)
    traffic = _workload(scn, rate_per_s).traffic(REQUESTS_PER_ROUND)
    kw = dict(objective=parse_objective(scn.objective), energy_scope=scn.energy_scope, baseline=space.baseline())
    free = truth_at(hw, space, traffic, **kw)  # type: ignore[arg-type]
    if not scn.slo and not scn.power_cap:
        return free, None, None
    slo = power = None
    if rate_per_s == scn.rate_per_s and scn.slo:
        slo = _binding_limit(free, free.outlook.p95_latency_s)
    if rate_per_s == scn.rate_per_s and scn.power_cap:
        power = _binding_limit(free, free.outlook.power_w)
    return truth_at(hw, space, traffic, slo_p95_s=slo, power_cap_w=power, **kw), slo, power  # type: ignore[arg-type]


def _binding_limit(free: Truth, values: np.ndarray) -> float:
    """A limit that rules out the unconstrained optimum, placed in the first gap of ≥ 5 % below it.

    No config then lies within a hair of the limit, where the expected p95 or power (estimated from a
    finite set of arrival draws by the strategy, from many by the oracle) would make feasibility a coin toss.
    """
    at_optimum = float(values[free.space.index(free.oracle_config)])
    below = np.sort(values[free.allowed & (values <= at_optimum)])[::-1]
    for upper, lower in zip(below, below[1:]):
        if upper / lower >= 1.05:
            return float(np.sqrt(upper * lower))
    raise ValueError("no gap of 5 % below the optimum's value: pick another constrained scenario")


def grid_of(scn: Scenario) -> ConfigSpace:
    """The scenario's grid."""
    return build_space(_open(scn, 0), freqs=scn.freqs, batches=scn.batches)


def oracle_at(
    scn: Scenario, rate_per_s: float, tables: dict[float | None, Costs] | None = None
) -> tuple[Truth | TableTruth, float | None, float | None]:
    """The oracle at one rate (an outside table where it gives this rate), with the scenario's constraints."""
    costs = table_at(tables or {}, rate_per_s, own=math.isclose(rate_per_s, scn.rate_per_s))
    if costs is None:
        return scenario_truth(scn, rate_per_s)
    slo = power = None
    if scn.slo or scn.power_cap:
        _, slo, power = scenario_truth(scn, rate_per_s)
    return table_truth(costs, grid_of(scn), where=f"oracle file, {scn.name} at {rate_per_s:g} req/s"), slo, power


def run_one(scn: Scenario, strategy: str, seed: int, tables: dict[float | None, Costs] | None = None) -> RunResult:
    """One tuning session of `strategy` on `scn`, scored round by round against the oracle (or outside `tables`)."""
    truth, slo, power = oracle_at(scn, scn.rate_per_s, tables)
    backends = _open(scn, seed)
    space = build_space(backends, freqs=scn.freqs, batches=scn.batches)
    budget = budget_for(space)
    workload = _workload(scn, scn.rate_per_s)
    settings = SessionSettings(
        space=space,
        objective=parse_objective(scn.objective),
        strategy=strategy,
        baseline=space.baseline(),
        energy_scope=scn.energy_scope,  # type: ignore[arg-type]
        idle_power_w=backends.profile.idle_power_w if backends.profile else None,
        seed=seed,
        slo_p95_s=slo,
        power_cap_w=power,
        budget=budget,
    )
    session = TuningSession(settings, workload.traffic(REQUESTS_PER_ROUND))
    runner = Runner(
        device=backends.device,
        engine=backends.engine,
        workload=workload,
        requests_per_round=REQUESTS_PER_ROUND,
        energy_scope=scn.energy_scope,  # type: ignore[arg-type]
        seed=seed,
    )
    served: list[float] = []
    incumbent: list[float] = []
    violations = 0
    for k in range(budget + 1):
        config = session.next_config()
        session.record(config, runner.measure(config))
        served.append(truth.ratio(config))
        incumbent.append(truth.ratio(session.best()))
        violations += k > 0 and truth.violates(config, slo_p95_s=slo, power_cap_w=power)
    final = session.best()
    row: dict[str, object] = {
        "scenario": scn.name,
        "family": scn.family,
        "strategy": strategy,
        "seed": seed,
        "oracle": "built-in" if isinstance(truth, Truth) else "file",
        "grid": len(space),
        "budget": budget,
        "oracle_config": str(truth.oracle_config),
        "final_config": str(final),
        "final_ratio": truth.ratio(final),
        "rounds_to_5pct": _rounds_to_within(incumbent),
        "mean_regret": float(np.mean(np.array(served[1:]) - 1.0)),
        "gain_vs_baseline_pct": 100.0 * (1.0 - truth.cost(final) / truth.cost(space.baseline())),
        "violating_rounds": int(violations),
        "final_violates": bool(truth.violates(final, slo_p95_s=slo, power_cap_w=power)),
    }
    for k, factor in enumerate(scn.drift):
        rate = scn.rate_per_s * factor
        truth, _, _ = oracle_at(scn, rate, tables)
        runner.workload = _workload(scn, rate)
        session.set_traffic(runner.workload.traffic(REQUESTS_PER_ROUND))
        after = [truth.ratio(session.best())]
        for _ in range(scn.drift_rounds):
            config = session.next_config()
            session.record(config, runner.measure(config))
            served.append(truth.ratio(config))
            after.append(truth.ratio(session.best()))
        incumbent += after[1:]
        row[f"drift{k + 1}_x{factor:g}_rounds_to_5pct"] = _rounds_to_within(after)
        row[f"drift{k + 1}_x{factor:g}_final_ratio"] = after[-1]
    return RunResult(row, served, incumbent)


def _rounds_to_within(ratios: Sequence[float]) -> float:
    """First index from which every ratio stays within 5 % (nan when the last one is not)."""
    if ratios[-1] > WITHIN:
        return float("nan")
    k = len(ratios)
    while k > 0 and ratios[k - 1] <= WITHIN:
        k -= 1
    return float(k)


def _scenario_runs(
    scn: Scenario, strategies: tuple[str, ...], seeds: tuple[int, ...], tables: dict[float | None, Costs] | None
) -> list[RunResult]:
    return [run_one(scn, s, seed, tables) for s in strategies for seed in seeds]


def run_sweep(
    scenarios: Sequence[Scenario],
    *,
    strategies: Sequence[str] = STRATEGIES,
    seeds: int = 10,
    workers: int = 2,
    oracle: OracleTables | None = None,
) -> list[RunResult]:
    """Every strategy on every scenario for `seeds` seeds, one scenario per task over `workers` processes.

    `oracle` (outside tables by scenario name, bench.oracle_file) scores the scenarios it names by its costs.
    """
    strategies, seed_list = tuple(strategies), tuple(range(seeds))
    scenarios = [replace(s) for s in scenarios]
    tables = [None if oracle is None else oracle.get(s.name) for s in scenarios]
    if workers <= 1:
        return [r for s, t in zip(scenarios, tables) for r in _scenario_runs(s, strategies, seed_list, t)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_scenario_runs, s, strategies, seed_list, t) for s, t in zip(scenarios, tables)]
        return [r for f in futures for r in f.result()]
