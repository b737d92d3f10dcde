"""How fast the tuning loop runs on the simulator: a whole run, and one strategy decision."""

from __future__ import annotations

import statistics

import numpy as np

from edpilot.backends import Backends, build_space, open_backends
from edpilot.clock import WallClock, cpu_time_s
from edpilot.objective import Objective
from edpilot.runner import Runner
from edpilot.search import DEFAULT_STRATEGY, SearchContext, make_strategy
from edpilot.tuner import SessionSettings, TuningSession, tune
from edpilot.workload import Workload


def simulated_session(
    backends: Backends, *, strategy: str, seed: int, workload: Workload, freqs: str | None = None
) -> TuningSession:
    """A session over the grid (the paper's, or `freqs`) with the EDP objective."""
    space = build_space(backends, freqs=freqs)
    settings = SessionSettings(
        space=space, objective=Objective("edp"), strategy=strategy, baseline=space.baseline(), seed=seed
    )
    return TuningSession(settings, workload.traffic(32))


def tune_speed(
    *,
    rounds: int = 100,
    strategy: str = DEFAULT_STRATEGY,
    repeats: int = 5,
    device: str = "sim",
    arrivals: str = "uniform",
    freqs: str | None = None,
) -> dict[str, object]:
    """Wall time (s) of `repeats` simulated tuning runs of `rounds` rounds, and time per decision (ms): wall
    and CPU (a loaded machine stretches wall-clock tails; CPU time is the work)."""
    workload = Workload(arrivals=arrivals)  # type: ignore[arg-type]
    clock = WallClock()
    wall_s = []
    for seed in range(repeats):
        start_s = clock.now_s()
        backends = open_backends(device=device, seed=seed)
        runner = Runner(device=backends.device, engine=backends.engine, workload=workload, seed=seed)
        session = simulated_session(backends, strategy=strategy, seed=seed, workload=workload, freqs=freqs)
        tune(runner=runner, session=session, budget=rounds)
        wall_s.append(clock.now_s() - start_s)

    # A decision alone: propose + observe, fed observations measured beforehand.
    backends = open_backends(device=device)
    space = build_space(backends, freqs=freqs)
    runner = Runner(device=backends.device, engine=backends.engine, workload=workload)
    observations = {c: runner.measure(c) for c in space}
    baseline = space.baseline()
    ctx = SearchContext(
        space=space,
        objective=Objective("edp").bind(observations[baseline]),
        baseline=baseline,
        traffic=workload.traffic(32),
    )
    search = make_strategy(strategy, ctx)
    search.observe(baseline, observations[baseline])
    decision_s, decision_cpu_s = [], []
    for _ in range(rounds):
        start_s, start_cpu_s = clock.now_s(), cpu_time_s()
        config = search.propose()
        search.observe(config, observations[config])
        decision_s.append(clock.now_s() - start_s)
        decision_cpu_s.append(cpu_time_s() - start_cpu_s)
    return {
        "strategy": strategy,
        "device": device,
        "arrivals": arrivals,
        "rounds": rounds,
        "grid_configs": len(space),
        "run_wall_s_median": statistics.median(wall_s),
        "run_wall_s_max": max(wall_s),
        "decision_ms_mean": 1e3 * statistics.fmean(decision_s),
        "decision_ms_p99": 1e3 * float(np.percentile(decision_s, 99)),
        "decision_ms_max": 1e3 * max(decision_s),
        "decision_cpu_ms_median": 1e3 * statistics.median(decision_cpu_s),
        "decision_cpu_ms_p99": 1e3 * float(np.percentile(decision_cpu_s, 99)),
    }
