"""How fast the tuning loop runs on the simulator: a whole run, and one strategy decision."""

from __future__ import annotations

import statistics

import numpy as np

from edpilot.backends import Backends, build_space, open_backends
from edpilot.clock import WallClock
from edpilot.objective import Objective
from edpilot.runner import Runner
from edpilot.search import DEFAULT_STRATEGY, SearchContext, make_strategy
from edpilot.tuner import SessionSettings, TuningSession, tune
from edpilot.workload import Workload


def simulated_session(backends: Backends, *, strategy: str, seed: int) -> TuningSession:
    """A session over the default grid with the EDP objective and the paper's workload."""
    space = build_space(backends)
    settings = SessionSettings(
        space=space, objective=Objective("edp"), strategy=strategy, baseline=space.baseline(), seed=seed
    )
    return TuningSession(settings, Workload().traffic(32))


def tune_speed(*, rounds: int = 100, strategy: str = DEFAULT_STRATEGY, repeats: int = 5) -> dict[str, object]:
    """Wall time (s) of `repeats` simulated tuning runs of `rounds` rounds, and time per decision (ms)."""
    clock = WallClock()
    wall_s = []
    for seed in range(repeats):
        start_s = clock.now_s()
        backends = open_backends(device="sim", seed=seed)
        runner = Runner(device=backends.device, engine=backends.engine, workload=Workload(), seed=seed)
        tune(runner=runner, session=simulated_session(backends, strategy=strategy, seed=seed), budget=rounds)
        wall_s.append(clock.now_s() - start_s)

    # A decision alone: propose + observe, fed observations measured beforehand.
    backends = open_backends(device="sim")
    space = build_space(backends)
    runner = Runner(device=backends.device, engine=backends.engine, workload=Workload())
    observations = {c: runner.measure(c) for c in space}
    baseline = space.baseline()
    ctx = SearchContext(
        space=space,
        objective=Objective("edp").bind(observations[baseline]),
        baseline=baseline,
        traffic=Workload().traffic(32),
    )
    search = make_strategy(strategy, ctx)
    search.observe(baseline, observations[baseline])
    decision_s = []
    for _ in range(rounds):
        start_s = clock.now_s()
        config = search.propose()
        search.observe(config, observations[config])
        decision_s.append(clock.now_s() - start_s)
    decision_s.sort()
    return {
        "strategy": strategy,
        "rounds": rounds,
        "grid_configs": len(space),
        "run_wall_s_median": statistics.median(wall_s),
        "run_wall_s_max": max(wall_s),
        "decision_ms_mean": 1e3 * statistics.fmean(decision_s),
        "decision_ms_p99": 1e3 * float(np.percentile(decision_s, 99)),
        "decision_ms_max": 1e3 * max(decision_s),
    }
