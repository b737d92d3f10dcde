"""How fast the tuning loop runs on the simulator: wall time of a 100-round run, and time per decision.

    python benchmarks/tune_speed.py [--rounds 100] [--strategy camel]

Targets (issue 3): the whole run under 2 s on 2 cores; a decision (propose + observe) under 1 ms.
"""

from __future__ import annotations

import argparse
import json
import time

from edpilot.backends import build_space, open_backends
from edpilot.objective import Objective
from edpilot.runner import Runner
from edpilot.search import make_strategy
from edpilot.tuner import tune
from edpilot.workload import Workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--strategy", default="camel")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    wall_s = []
    for seed in range(args.repeats):
        start = time.perf_counter()
        backends = open_backends(device="sim", seed=seed)
        runner = Runner(device=backends.device, engine=backends.engine, clock=backends.clock, workload=Workload())
        tune(
            runner=runner,
            space=build_space(backends),
            strategy=args.strategy,
            objective=Objective("edp"),
            budget=args.rounds,
            seed=seed,
        )
        wall_s.append(time.perf_counter() - start)

    # Decision time alone: the strategy's propose + observe, fed recorded observations.
    backends = open_backends(device="sim")
    space = build_space(backends)
    runner = Runner(device=backends.device, engine=backends.engine, clock=backends.clock, workload=Workload())
    observations = {c: runner.measure(c) for c in space}
    strategy = make_strategy(args.strategy, space, cost_fn=Objective("edp").cost, seed=0)
    decision_s = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        config = strategy.propose()
        strategy.observe(config, observations[config])
        decision_s.append(time.perf_counter() - start)

    print(
        json.dumps(
            {
                "strategy": args.strategy,
                "rounds": args.rounds,
                "grid_configs": len(space),
                "run_wall_s_median": sorted(wall_s)[len(wall_s) // 2],
                "run_wall_s_max": max(wall_s),
                "decision_ms_mean": 1e3 * sum(decision_s) / len(decision_s),
                "decision_ms_max": 1e3 * max(decision_s),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
