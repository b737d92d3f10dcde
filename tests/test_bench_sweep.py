"""The search benchmark: exact oracle, one scored run, a tiny parallel sweep and its report."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edpilot.bench import Scenario, default_scenarios, holdout_scenarios, run_one, run_sweep, write_report
from edpilot.bench.scenarios import SYNTHETIC, _base, write_synthetic
from edpilot.bench.sweep import _hardware, _workload, budget_for, scenario_truth
from edpilot.clock import VirtualClock
from edpilot.runner import Runner
from edpilot.sim import BatchCost, SimDevice, SimEngine
from edpilot.sim.profile import read_profile
from edpilot.space import Config

SYN = Scenario("syn-small-b", "synthetic", "uniform", 0.3, synthetic="small-b")


def test_oracle_matches_the_runner_on_noise_free_hardware():
    truth, _, _ = scenario_truth(SYN, 0.3)
    space, hw = _hardware(SYN)

    # Uniform arrivals are deterministic: the runner on the profile's per-config means gives the oracle's EDP.
    class Means:
        freqs_mhz = space.freqs_mhz
        has_energy = True

        def idle_power_w(self, freq_mhz):
            return float(hw.idle_power_w[0])

        def batch_cost(self, freq_mhz, prompt_tokens, output_tokens, rng):
            i = space.index(Config.of(len(prompt_tokens), gpu_mhz=freq_mhz))
            return BatchCost(float(hw.service_s[i]), float(hw.energy_per_batch_j[i]), None)

        def describe(self):
            return {}

    # Steady state: from the second round of one stream on, a uniform stream at a config that keeps up repeats
    # exactly (each round spans m·b/λ), and its EDP is the oracle's.
    checked = 0
    for c in list(space)[::7]:
        clock = VirtualClock()
        device = SimDevice(Means(), clock, name="means")
        engine = SimEngine(device, Means(), clock, np.random.default_rng(0))
        runner = Runner(device=device, engine=engine, workload=_workload(SYN, 0.3))
        first, second = runner.measure(c), runner.measure(c)
        if truth.outlook.utilisation[space.index(c)] < 1.0:
            assert second.edp == pytest.approx(truth.cost(c), rel=1e-9)
            checked += 1
        else:
            assert truth.cost(c) == np.inf and not first.keeps_up
    assert checked >= 3


def test_one_run_is_scored_against_the_oracle():
    result = run_one(SYN, "edpilot", 0)
    row = result.row
    assert row["budget"] == budget_for(_hardware(SYN)[0]) == 10
    assert len(result.served) == 11 and len(result.incumbent) == 11
    assert min(result.served) >= 1.0 - 1e-9
    assert row["final_ratio"] <= 1.05
    # served: each round's config at its steady-state cost; a config past capacity has none (inf), and its round
    # is scored by what it cost its users (the experienced regret)
    served = np.array(result.served[1:])
    if np.isfinite(served).all():
        assert row["mean_regret_steady"] == pytest.approx(np.mean(served - 1))
    assert row["mean_regret"] > -0.5 and np.isfinite(row["mean_regret"])
    assert row["probes"] >= 0 and row["overloaded_rounds"] == 0


def test_drift_and_a_tiny_parallel_sweep_write_a_report(tmp_path):
    drift = Scenario("drift", "drift", "uniform", 0.3, synthetic="small-b", drift=(4.0,), drift_rounds=2)
    results = run_sweep([SYN, drift], strategies=("edpilot", "random"), seeds=1, workers=2)
    assert len(results) == 4
    drifted = [r for r in results if r.row["scenario"] == "drift"]
    assert all("drift1_x4_rounds_to_5pct" in r.row and len(r.served) == 11 + 2 for r in drifted)
    paths = write_report(results, tmp_path, plot=False)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 4 and {r["strategy"] for r in rows} == {"edpilot", "random"}
    assert "| edpilot |" in paths["markdown"].read_text()


def test_held_out_scenarios_are_new_and_their_surfaces_are_what_they_say(tmp_path):
    held, default = holdout_scenarios(), default_scenarios()
    names = [s.name for s in held]
    assert len(names) == len(set(names)) and not set(names) & {s.name for s in default}
    assert not {s.synthetic for s in held if s.synthetic} & {s.synthetic for s in default if s.synthetic}
    cliff = SYNTHETIC["cliff-16"].surface
    assert cliff(900.0, 8) == _base(900.0, 8)
    assert cliff(900.0, 16) == pytest.approx(np.array(_base(900.0, 16)) * (1.6, 1.7))
    table = read_profile(write_synthetic("spike", tmp_path))
    spike, neighbour = (table.samples(Config.of(4, gpu_mhz=f)).mean(axis=0) for f in (700.0, 500.0))
    assert spike == pytest.approx(3.0 * np.array(_base(700.0, 4)))
    assert neighbour == pytest.approx(np.array(_base(500.0, 4)))
