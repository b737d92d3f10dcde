"""The three-knob benchmark family: its 196-config grid, its oracle, and a session that searches every knob."""

from __future__ import annotations

import pytest

from edpilot.bench import knob_scenarios
from edpilot.bench.sweep import grid_of, run_one, scenario_truth
from edpilot.space import Config


def test_the_family_searches_7_gpu_by_4_memory_by_7_batch_levels():
    scenarios = knob_scenarios()
    assert {s.family for s in scenarios} == {"three-knobs"} and all(s.emcs == "all" for s in scenarios)
    space = grid_of(scenarios[0])
    assert space.knob_names == ("gpu_mhz", "emc_mhz") and len(space) == 196
    assert space.axis("emc_mhz").levels == (204.0, 665.6, 2133.0, 3199.0)  # type: ignore[union-attr]


def test_the_oracle_prices_the_memory_clock():
    """At 0.1 req/s the board idles most of the time and a lower memory clock idles lower: the optimum drops it."""
    scn = next(s for s in knob_scenarios() if s.name == "k3-llama-p0.1")
    truth, _, _ = scenario_truth(scn, scn.rate_per_s)
    assert truth.oracle_config.level("emc_mhz") == 2133.0
    top = truth.cost(Config.of(4, gpu_mhz=510.0, emc_mhz=3199.0))
    assert truth.cost(truth.oracle_config) < 0.97 * top


@pytest.mark.parametrize("strategy", ["edpilot", "optuna-tpe"])
def test_a_session_measures_configs_of_all_three_axes(strategy):
    scn = next(s for s in knob_scenarios() if s.name == "k3-energy-p1")
    result = run_one(scn, strategy, 0, budget=6)
    configs = [r.config for r in result.rounds]
    assert len(configs) == 7 and all(c.level("emc_mhz") is not None for c in configs)
    assert configs[0] == Config.of(28, gpu_mhz=930.75, emc_mhz=3199.0)  # the baseline: every knob at its top
