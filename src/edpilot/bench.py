"""How fast the tuning loop runs on the simulator: a whole run, and one strategy decision."""

from __future__ import annotations

import statistics

from edpilot.backends import build_space, open_backends
from edpilot.clock import WallClock
from edpilot.objective import Objective
from edpilot.runner import Runner
from edpilot.search import make_strategy
from edpilot.tuner import tune
from edpilot.workload import Workload


def tune_speed(*, rounds: int = 100, strategy: str = "camel", repeats: int = 5) -> dict[str, object]:
    """Wall time (s) of `repeats` simulated tuning runs of `rounds` rounds, and time per decision (ms)."""
    clock = WallClock()
    wall_s = []
    for seed in range(repeats):
        start_s = clock.now_s()
        backends = open_backends(device="sim", seed=seed)
        runner = Runner(device=backends.device, engine=backends.engine, clock=backends.clock, workload=Workload())
        tune(
            runner=runner,
            space=build_space(backends),
            strategy=strategy,
            objective=Objective("edp"),
            budget=rounds,
            seed=seed,
        )
        wall_s.append(clock.now_s() - start_s)

    # A decision alone: propose + observe, fed observations measured beforehand.
    backends = open_backends(device="sim")
    space = build_space(backends)
    runner = Runner(device=backends.device, engine=backends.engine, clock=backends.clock, workload=Workload())
    observations = {c: runner.measure(c) for c in space}
    search = make_strategy(strategy, space, cost_fn=Objective("edp").cost, seed=0)
    decision_s = []
    for _ in range(rounds):
        start_s = clock.now_s()
        config = search.propose()
        search.observe(config, observations[config])
        decision_s.append(clock.now_s() - start_s)
    return {
        "strategy": strategy,
        "rounds": rounds,
        "grid_configs": len(space),
        "run_wall_s_median": statistics.median(wall_s),
        "run_wall_s_max": max(wall_s),
        "decision_ms_mean": 1e3 * statistics.fmean(decision_s),
        "decision_ms_max": 1e3 * max(decision_s),
    }
