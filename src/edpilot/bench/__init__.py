"""Benchmarks on the simulator: how fast the tuning loop runs, and how well each search strategy does.

tune_speed(rounds=100, strategy="edpilot")          # wall time of a run, time per decision
results = run_sweep(default_scenarios(), seeds=10)  # strategies × scenarios × seeds, over processes
write_report(results, Path("bench-out"))            # runs.csv, summary.md, curves.png
"""

from __future__ import annotations

from edpilot.bench.report import write_report
from edpilot.bench.scenarios import Scenario, default_scenarios, holdout_scenarios, knob_scenarios
from edpilot.bench.speed import tune_speed
from edpilot.bench.sweep import STRATEGIES, RunResult, run_one, run_sweep

__all__ = [
    "STRATEGIES",
    "RunResult",
    "Scenario",
    "default_scenarios",
    "holdout_scenarios",
    "knob_scenarios",
    "run_one",
    "run_sweep",
    "tune_speed",
    "write_report",
]
