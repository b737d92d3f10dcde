"""How fast the tuning loop runs on the simulator (same as `edpilot bench`).

    python benchmarks/tune_speed.py [--rounds 100] [--strategy edpilot] [--repeats 5]

Targets (issue 3): a 100-round run under 2 s on 2 cores; a decision (propose + observe) under 1 ms.
"""

from __future__ import annotations

import argparse
import json

from edpilot.bench import tune_speed
from edpilot.search import DEFAULT_STRATEGY

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--strategy", default=DEFAULT_STRATEGY)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(tune_speed(rounds=args.rounds, strategy=args.strategy, repeats=args.repeats), indent=2))
