"""The search benchmark: strategies × scenarios × seeds on the simulator, scored against the exact oracle.

Each run is a real simulated tuning session (`TuningSession` + `Runner`): the baseline round, then
`budget = min(15, grid / 4)` search rounds (`budget=N`: N on every scenario); drift scenarios then change the
arrival rate (workload and `TuningSession.set_traffic`) and run `drift_rounds` more rounds per change. Per round
it records the served config's expected cost and the incumbent's (`session.best()`) over the oracle at that
traffic. With outside tables (`--oracle-file`, bench.oracle_file) a scenario's rates that a table gives
are scored by it.

The oracle is the steady state (bench.oracle); each row also carries the final config's ratio under the earlier
32-request-window oracle (`final_ratio_window`), the rounds' experienced regret (each round's measured cost —
its inherited backlog included — over the oracle), the bounded probes and what they cost, the rounds the runner
ended early because they fell behind, and the full rounds served at a measured utilisation above 1.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from edpilot.backends import Backends, build_space, open_backends
from edpilot.bench.oracle import Hardware, Truth, true_hardware, truth_at
from edpilot.bench.oracle_file import Costs, OracleTables, TableTruth, table_at, table_truth
from edpilot.bench.scenarios import HICCUP_SPANS_S, OUTPUT_TOKENS, Hiccups, Scenario, write_synthetic
from edpilot.objective import Observation, parse_objective
from edpilot.records import RoundRecord
from edpilot.runner import Runner
from edpilot.space import ConfigSpace
from edpilot.tuner import SessionSettings, TuningSession, play_round
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
    rounds: list[RoundRecord] = field(default_factory=list)


def budget_for(space: ConfigSpace) -> int:
    """Search rounds: a quarter of the grid, never more than 15, at least 1."""
    return max(1, min(15, len(space) // 4))


@lru_cache(maxsize=8)
def _profile_path(name: str) -> str:
    return str(write_synthetic(name, Path(tempfile.mkdtemp(prefix="edpilot-bench-"))))


def _open(scn: Scenario, seed: int) -> Backends:
    profile = _profile_path(scn.synthetic) if scn.synthetic else scn.profile
    board = "sim" if profile else f"sim:{scn.board}"
    backends = open_backends(device=board, model=scn.model, profile=profile, seed=seed)
    if scn.hiccups:
        engine = backends.engine
        engine.model = Hiccups(engine.model, engine.clock, HICCUP_SPANS_S)  # type: ignore[attr-defined]
    return backends


def _space(scn: Scenario, backends: Backends) -> ConfigSpace:
    return build_space(backends, freqs=scn.freqs, batches=scn.batches, emcs=scn.emcs, phase_clocks=scn.phase_clocks)


def _workload(scn: Scenario, rate_per_s: float) -> Workload:
    return Workload(
        arrivals=scn.arrivals,  # type: ignore[arg-type]
        rate_per_s=rate_per_s,
        output_tokens=OUTPUT_TOKENS,
        prompt_tokens=scn.prompt_tokens,
    )


@lru_cache(maxsize=4)
def _hardware(scn: Scenario) -> tuple[ConfigSpace, Hardware]:
    backends = _open(scn, 0)
    space = _space(scn, backends)
    return space, true_hardware(backends, space, prompt_tokens=scn.prompt_tokens, output_tokens=OUTPUT_TOKENS)


@lru_cache(maxsize=16)
def scenario_truth(
    scn: Scenario, rate_per_s: float, *, window: bool = False
) -> tuple[Truth, float | None, float | None]:
    """The oracle at one rate, with the constraints the scenario sets (relative to its unconstrained optimum);
    `window=True`: the earlier 32-request-window oracle, for the side-by-side figure."""
    space, hw = _hardware(scn)
    traffic = _workload(scn, rate_per_s).traffic(REQUESTS_PER_ROUND)
    kw = dict(
        objective=parse_objective(scn.objective),
        energy_scope=scn.energy_scope,
        baseline=space.baseline(),
        window=window,
    )
    free = truth_at(hw, space, traffic, **kw)  # type: ignore[arg-type]
    if window or (not scn.slo and not scn.power_cap):
        return free, None, None
    slo = power = None
    if rate_per_s == scn.rate_per_s and scn.slo:
        slo = _binding_limit(free, free.outlook.p95_latency_s)
    if rate_per_s == scn.rate_per_s and scn.power_cap:
        power = _binding_limit(free, free.outlook.power_w)
    return truth_at(hw, space, traffic, slo_p95_s=slo, power_cap_w=power, **kw), slo, power  # type: ignore[arg-type]


def _binding_limit(free: Truth, values: np.ndarray) -> float:
    """A limit that rules out the unconstrained optimum, placed in the first gap of ≥ 5 % below it (the widest
    gap where there is none).

    No config then lies within a hair of the limit, where the expected p95 or power (estimated from a
    finite set of arrival draws by the strategy, from many by the oracle) would make feasibility a coin toss.
    """
    at_optimum = float(values[free.space.index(free.oracle_config)])
    below = np.sort(values[free.allowed & (values <= at_optimum)])[::-1]
    pairs = list(zip(below, below[1:]))
    if not pairs:
        raise ValueError("no config below the optimum's value: pick another constrained scenario")
    upper, lower = next(((u, v) for u, v in pairs if u / v >= 1.05), max(pairs, key=lambda p: p[0] / p[1]))
    return float(np.sqrt(upper * lower))


def grid_of(scn: Scenario) -> ConfigSpace:
    """The scenario's grid."""
    return _space(scn, _open(scn, 0))


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


def run_one(
    scn: Scenario,
    strategy: str,
    seed: int,
    tables: dict[float | None, Costs] | None = None,
    *,
    budget: int | None = None,
) -> RunResult:
    """One tuning session of `strategy` on `scn`, scored round by round against the oracle (or outside `tables`);
    `budget` search rounds (None: `budget_for` the grid)."""
    truth, slo, power = oracle_at(scn, scn.rate_per_s, tables)
    backends = _open(scn, seed)
    space = _space(scn, backends)
    budget = budget_for(space) if budget is None else budget
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
    experienced: list[float] = []
    probes: list[float] = []
    overloaded = cut = 0
    violations = 0
    for k in range(budget + 1):
        record = play_round(runner, session)
        config = record.config
        served.append(truth.ratio(config))
        incumbent.append(truth.ratio(session.best()))
        if isinstance(truth, Truth) and not truth.overloaded:
            experienced.append(_experienced(truth, record.obs))
        else:  # overloaded, or a table (its costs are in its own unit): a round is scored by its config's ratio
            experienced.append(truth.ratio(config))
        rho = _measured_rho(record.obs, scn, scn.rate_per_s, config.batch_size)
        if record.note and record.note.startswith("probe"):
            probes.append(experienced[-1])
        elif record.obs.requests < runner.window_requests(config.batch_size):
            cut += 1  # fell behind: the runner ended it at a batch boundary
        else:
            all_overloaded = isinstance(truth, Truth) and truth.overloaded
            overloaded += k > 0 and rho > 1.0 and not all_overloaded  # where nothing keeps up, nothing can
        violations += k > 0 and truth.violates(config, slo_p95_s=slo, power_cap_w=power)
    final = session.best()
    window_truth, _, _ = scenario_truth(scn, scn.rate_per_s, window=True)
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
        "final_ratio_window": window_truth.ratio(final),
        "rounds_to_5pct": _rounds_to_within(incumbent),
        "mean_regret": float(np.mean(np.array(experienced[1:]) - 1.0)),
        "mean_regret_steady": float(np.mean(np.where(np.isfinite(served), served, experienced)[1:] - 1.0)),
        "cumulative_regret": float(np.sum(np.array(experienced[1:]) - 1.0)),
        "probes": len(probes),
        "probe_regret": float(np.sum(np.array(probes) - 1.0)) if probes else 0.0,
        "overloaded_rounds": int(overloaded),
        "cut_rounds": int(cut),
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
            record = play_round(runner, session)
            served.append(truth.ratio(record.config))
            after.append(truth.ratio(session.best()))
        incumbent += after[1:]
        row[f"drift{k + 1}_x{factor:g}_rounds_to_5pct"] = _rounds_to_within(after)
        row[f"drift{k + 1}_x{factor:g}_final_ratio"] = after[-1]
    return RunResult(row, served, incumbent, list(session.rounds))


def _experienced(truth: Truth, obs: Observation) -> float:
    """What a round cost its users over the oracle: its measured cost (the backlog it inherited included) under
    the oracle's objective; inf for a failed round."""
    if obs.failed or obs.energy_per_request_j is None and truth.objective.needs_energy:
        return float("inf")
    return truth.objective.cost(obs) / truth.oracle_cost


def _measured_rho(obs: Observation, scn: Scenario, rate_per_s: float, batch_size: int) -> float:
    """Utilisation the round measured: its mean batch time × λ / b (0 for saturated arrivals)."""
    return 0.0 if scn.arrivals == "saturated" else obs.mean_batch_s * rate_per_s / batch_size


def _rounds_to_within(ratios: Sequence[float]) -> float:
    """First index from which every ratio stays within 5 % (nan when the last one is not)."""
    if ratios[-1] > WITHIN:
        return float("nan")
    k = len(ratios)
    while k > 0 and ratios[k - 1] <= WITHIN:
        k -= 1
    return float(k)


def _scenario_runs(
    scn: Scenario,
    strategies: tuple[str, ...],
    seeds: tuple[int, ...],
    tables: dict[float | None, Costs] | None,
    budget: int | None,
) -> list[RunResult]:
    return [run_one(scn, s, seed, tables, budget=budget) for s in strategies for seed in seeds]


def run_sweep(
    scenarios: Sequence[Scenario],
    *,
    strategies: Sequence[str] = STRATEGIES,
    seeds: int = 10,
    workers: int = 2,
    oracle: OracleTables | None = None,
    budget: int | None = None,
) -> list[RunResult]:
    """Every strategy on every scenario for `seeds` seeds, one scenario per task over `workers` processes.

    `oracle` (outside tables by scenario name, bench.oracle_file) scores the scenarios it names by its costs;
    `budget` search rounds on every scenario (None: `budget_for` each grid).
    """
    strategies, seed_list = tuple(strategies), tuple(range(seeds))
    scenarios = [replace(s) for s in scenarios]
    tables = [None if oracle is None else oracle.get(s.name) for s in scenarios]
    if workers <= 1:
        return [r for s, t in zip(scenarios, tables) for r in _scenario_runs(s, strategies, seed_list, t, budget)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_scenario_runs, s, strategies, seed_list, t, budget) for s, t in zip(scenarios, tables)]
        return [r for f in futures for r in f.result()]
