"""How well each search strategy finds the optimum: strategies × scenarios × seeds against the steady-state oracle.

    python benchmarks/search_sweep.py [--seeds 10] [--workers 2] [--output bench-out] [--profile FILE.csv ...]
    python benchmarks/search_sweep.py --holdout [...]   # scenarios written after the settings were chosen

Same as `edpilot bench --sweep`. Writes runs.csv (every run), summary.md and curves.png (regret per round).
The oracle is every config's steady-state cost (the queue carried over, ≥ 200 000 arrivals or exact); the
earlier 32-request-window figure is shown beside it. Targets (issue 17): median final cost ≤ 1.01 × oracle,
worst ≤ 1.05 ×, ≥ 90 % of runs within 1 %; no full round at a measured utilisation above 1 except bounded probes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edpilot.bench import default_scenarios, holdout_scenarios, run_sweep, write_report

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("bench-out"))
    parser.add_argument("--profile", action="append", default=[])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--holdout", action="store_true")
    args = parser.parse_args()
    if args.holdout:
        scenarios = holdout_scenarios()
    else:
        scenarios = default_scenarios(profiles=args.profile, quick=args.quick)
    results = run_sweep(scenarios, seeds=args.seeds, workers=args.workers)
    paths = write_report(results, args.output)
    print(paths["markdown"].read_text(encoding="utf-8"))
