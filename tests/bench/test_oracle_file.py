"""`edpilot bench --sweep --strategies ... --oracle-file FILE.json`: outside true costs score the runs."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from edpilot.bench.scenarios import default_scenarios
from edpilot.bench.sweep import grid_of
from edpilot.cli import app

SCENARIO = "syn-uneven"  # 3 levels × 4 batch sizes, budget 3


def grid():
    return list(grid_of({s.name: s for s in default_scenarios()}[SCENARIO]))


def table(costs=None, **entry):
    configs = grid()
    costs = costs or {c: 10.0 + i for i, c in enumerate(configs)}
    rows = [{"freq_mhz": c.freq_mhz, "batch_size": c.batch_size, "cost": costs[c]} for c in configs]
    return {"format": "edpilot-oracle/1", "scenarios": [{"scenario": SCENARIO, "costs": rows, **entry}]}


def bench(tmp_path, data, *extra):
    path = tmp_path / "oracle.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    args = ["bench", "--sweep", "--seeds", "1", "--workers", "1", "--output", str(tmp_path / "out")]
    return CliRunner().invoke(app, [*args, "--oracle-file", str(path), *extra])


def test_runs_are_scored_by_the_files_costs(tmp_path):
    configs = grid()
    costs = {c: 100.0 for c in configs}
    cheapest = configs[5]
    costs[cheapest] = 50.0
    costs[configs[0]] = 80.0
    result = bench(tmp_path, table(costs), "--strategies", "grid,random")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "out" / "runs.csv").open()))
    assert [r["strategy"] for r in rows] == ["grid", "random"] and {r["scenario"] for r in rows} == {SCENARIO}
    for row in rows:
        assert row["oracle"] == "file" and row["oracle_config"] == str(cheapest)
        final = next(c for c in configs if str(c) == row["final_config"])
        assert float(row["final_ratio"]) == pytest.approx(costs[final] / 50.0)
    grid_row = rows[0]  # grid measures the baseline, then configs 0, 1, 2: (config 0) is the cheapest it saw in truth
    assert float(grid_row["mean_regret"]) == pytest.approx((80.0 + 100.0 + 100.0) / 3 / 50.0 - 1.0)


def test_a_rate_the_scenario_does_not_run_at_is_refused(tmp_path):
    out = bench(tmp_path, table(rate_per_s=7.0)).output
    assert "syn-uneven runs at 1.5 req/s, not 7" in out


@pytest.mark.parametrize(
    "mutate,says",
    [
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: {**d, "format": "other/1"}, "'format' must be 'edpilot-oracle/1'"),
        (lambda d: {**d, "scenarios": []}, "'scenarios' is empty"),
        (
            lambda d: {"format": d["format"], "scenarios": [{**d["scenarios"][0], "scenario": "nope"}]},
            "no scenario 'nope'",
        ),
        (lambda d: _costs(d, lambda rows: rows[1:]), "1 grid configs missing"),
        (lambda d: _costs(d, lambda rows: rows + [{**rows[0], "batch_size": 999}]), "1 not in the grid"),
        (lambda d: _costs(d, lambda rows: rows + rows[:1]), "is given twice"),
        (lambda d: _costs(d, lambda rows: [{**rows[0], "cost": 0}] + rows[1:]), "'cost' must be a finite number > 0"),
        (lambda d: _costs(d, lambda rows: [{**rows[0], "cost": "1"}] + rows[1:]), "costs[0]: 'cost' must be"),
        (lambda d: _costs(d, lambda rows: [{**r, "allowed": False} for r in rows]), "no config is allowed"),
        (
            lambda d: _costs(d, lambda rows: [{**rows[0], "allowed": "no"}] + rows[1:]),
            "'allowed' must be true or false",
        ),
    ],
)
def test_a_bad_oracle_file_is_one_line_and_exit_2(tmp_path, mutate, says):
    result = bench(tmp_path, mutate(table()))
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and says in result.output, result.output


def _costs(d, change):
    entry = dict(d["scenarios"][0])
    entry["costs"] = change(list(entry["costs"]))
    return {**d, "scenarios": [entry]}


def test_bench_strategies_are_checked_before_anything_runs(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--sweep", "--strategies", "edpilot,nope", "--output", str(tmp_path)])
    assert result.exit_code == 2 and "unknown strategy 'nope'" in result.output
    assert not (tmp_path / "runs.csv").exists()
    result = CliRunner().invoke(app, ["bench", "--strategies", "edpilot"])
    assert result.exit_code == 2 and "go with --sweep" in result.output
