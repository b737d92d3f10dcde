"""`edpilot bench --sweep --budget N`: one budget on every scenario, and the last round of a budget exploits."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from edpilot.bench.scenarios import default_scenarios
from edpilot.bench.sweep import run_one, scenario_truth
from edpilot.cli import app

SCENARIOS = {s.name: s for s in default_scenarios(quick=True)}


def test_the_budget_override_sets_the_search_rounds_of_a_run():
    scn = SCENARIOS["syn-uneven"]  # 12 configs: budget 3 by default
    result = run_one(scn, "edpilot", 0, budget=5)
    assert result.row["budget"] == 5
    assert len(result.rounds) == 6  # the baseline round and 5 search rounds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_budget_of_two_ends_on_a_full_round_and_no_worse_than_the_baseline(seed):
    scn = SCENARIOS["syn-one-freq"]  # 1 × 8 grid: budget 2; its second round went to a probe (1.60 of the oracle)
    truth, _, _ = scenario_truth(scn, scn.rate_per_s)
    result = run_one(scn, "edpilot", seed, budget=2)
    last = result.rounds[-1]
    assert not (last.note or "").startswith("probe")
    assert result.row["final_ratio"] <= truth.ratio(truth.space.baseline())
    assert result.row["final_ratio"] < 1.05  # the optimum (900 MHz, b 5) is the safe config predicted best


def test_a_cliff_below_the_baseline_does_not_hide_the_lower_clock_next_to_the_incumbent():
    # syn-cliff: b ≥ 12 1.8× slower, the baseline inside the cliff, the optimum (900 MHz, b 8) at 99 %
    # utilisation; the smooth fit taught by the cliff put (1100 MHz, b 8) past capacity (1.137 on every seed)
    # until the clock ceiling: a lower clock is at most f_k / f_j slower than the measured (1300 MHz, b 8)
    result = run_one(SCENARIOS["syn-cliff"], "edpilot", 0, budget=15)
    assert result.row["final_ratio"] < 1.06


def test_bench_budget_goes_with_sweep_and_is_bounded(tmp_path):
    runner = CliRunner()
    alone = runner.invoke(app, ["bench", "--budget", "3"])
    assert alone.exit_code == 2
    assert "--budget go with --sweep" in alone.output
    zero = runner.invoke(app, ["bench", "--sweep", "--budget", "0", "--output", str(tmp_path / "z")])
    assert zero.exit_code == 2
    assert "--budget" in zero.output


def test_bench_sweep_budget_is_written_to_every_row(tmp_path):
    out = tmp_path / "out"
    args = ["bench", "--sweep", "--strategies", "edpilot", "--seeds", "1", "--workers", "1", "--quick"]
    result = CliRunner().invoke(app, [*args, "--budget", "2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "runs.csv").open(encoding="utf-8")))
    assert rows and {r["budget"] for r in rows} == {"2"}
