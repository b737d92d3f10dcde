"""How fast the tuning loop runs on the simulator (same as `edpilot bench`).

    python benchmarks/tune_speed.py [--rounds 100] [--strategy edpilot] [--repeats 5]
                                    [--device sim:BOARD] [--arrivals uniform|poisson] [--freqs all]

Targets (issues 3 and 9): a 100-round run under 2 s on 2 cores; a decision (propose + observe) ≤ 1 ms p99.
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
    parser.add_argument("--device", default="sim")
    parser.add_argument("--arrivals", choices=("uniform", "poisson"), default="uniform")
    parser.add_argument("--freqs", default=None)
    args = parser.parse_args()
    print(json.dumps(tune_speed(**vars(args)), indent=2))
