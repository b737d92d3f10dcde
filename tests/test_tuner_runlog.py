"""The tuning loop writes its log as it goes; a crash keeps what was measured."""

from __future__ import annotations

import json

import pytest

from edpilot.backends import build_space, open_backends
from edpilot.errors import EngineError
from edpilot.objective import Objective
from edpilot.runlog import RunLog, read_run_log
from edpilot.runner import Runner
from edpilot.tuner import tune
from edpilot.workload import Workload


def make_runner(backends, **kw):
    return Runner(device=backends.device, engine=backends.engine, clock=backends.clock, workload=Workload(), **kw)


def test_log_has_header_rounds_and_summary(tmp_path):
    backends = open_backends(device="sim")
    space = build_space(backends)
    path = tmp_path / "run.jsonl"
    with RunLog(path) as log:
        log.write({"type": "run", "strategy": "grid"})
        result = tune(
            runner=make_runner(backends),
            space=space,
            strategy="grid",
            objective=Objective("edp"),
            budget=5,
            run_log=log,
        )
    records = read_run_log(path)
    assert [r["type"] for r in records] == ["run"] + ["round"] * 6 + ["summary"]
    r0 = records[1]
    assert r0["role"] == "baseline" and (r0["freq_mhz"], r0["batch_size"]) == (930.75, 28)
    for key in (
        "requests",
        "energy_per_request_j",
        "mean_latency_s",
        "p95_latency_s",
        "edp",
        "cost",
        "power_w",
        "mean_batch_s",
        "energy_per_batch_j",
        "keeps_up",
    ):
        assert key in r0
    assert r0["edp"] == pytest.approx(r0["energy_per_request_j"] * r0["mean_latency_s"])
    summary = records[-1]
    assert summary["rounds"] == 5
    assert summary["edp_baseline"] == pytest.approx(r0["edp"])
    assert summary["edp_gain_pct"] == pytest.approx(result.edp_gain_pct)
    best_rounds = [r for r in records[1:-1] if (r["freq_mhz"], r["batch_size"]) == tuple(summary["best"].values())]
    assert summary["edp_best"] == pytest.approx(sum(r["edp"] for r in best_rounds) / len(best_rounds))


class FailingEngine:
    name = "failing"

    def __init__(self, inner, fail_after_batches):
        self.inner, self.left = inner, fail_after_batches

    def generate(self, batch):
        self.left -= 1
        if self.left < 0:
            raise EngineError("engine died")
        return self.inner.generate(batch)

    def describe(self):
        return {}


def test_crash_keeps_finished_rounds(tmp_path):
    backends = open_backends(device="sim")
    space = build_space(backends, batches="4")
    runner = Runner(
        device=backends.device, engine=FailingEngine(backends.engine, 25), clock=backends.clock, workload=Workload()
    )
    path = tmp_path / "run.jsonl"
    with pytest.raises(EngineError), RunLog(path) as log:
        tune(runner=runner, space=space, strategy="grid", objective=Objective("edp"), budget=6, run_log=log)
    records = read_run_log(path)
    assert [r["round"] for r in records] == [0, 1, 2]  # 8 batches per round; the 26th batch failed


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps({"type": "round", "round": 0, "edp": 1.0}) + "\n" + '{"type": "rou')
    assert len(read_run_log(path)) == 1


def test_weighted_objective_normalises_by_baseline():
    backends = open_backends(device="sim")
    result = tune(
        runner=make_runner(backends),
        space=build_space(backends),
        strategy="grid",
        objective=Objective("weighted", 0.5),
        budget=3,
    )
    assert result.rounds[0].cost == pytest.approx(1.0)
