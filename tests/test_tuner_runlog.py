"""The tuning loop writes its log as it goes; a crash keeps what was measured; failures are never success."""

from __future__ import annotations

import json

import pytest

from edpilot.backends import open_backends
from edpilot.engine.base import Completion
from edpilot.errors import ConfigError, EngineError
from edpilot.objective import Objective
from edpilot.runlog import RunLog, read_run_log
from tests.conftest import run_tune


def test_log_has_rounds_and_summary(tmp_path):
    backends = open_backends(device="sim")
    path = tmp_path / "run.jsonl"
    with RunLog(path) as log:
        result = run_tune(backends, strategy="grid", budget=5, run_log=log)
    data = read_run_log(path)
    assert [r.round for r in data.rounds] == list(range(6))
    r0 = data.rounds[0]
    assert r0.role == "baseline" and (r0.config.freq_mhz, r0.config.batch_size) == (930.75, 28)
    raw = json.loads(path.read_text().splitlines()[0])
    for key in ("requests", "energy_per_request_j", "mean_latency_s", "p95_latency_s", "edp", "cost", "power_w"):
        assert key in raw
    assert raw["edp"] == pytest.approx(raw["energy_per_request_j"] * raw["mean_latency_s"])
    summary = data.summary
    assert summary["rounds"] == 5 and summary["objective"] == "edp"
    assert summary["baseline"]["edp"] == pytest.approx(r0.obs.edp)
    assert summary["edp_gain_pct"] == pytest.approx(result.summary.edp_gain_pct)
    best = (summary["best"]["freq_mhz"], summary["best"]["batch_size"])
    best_rounds = [r for r in data.rounds if (r.config.freq_mhz, r.config.batch_size) == best]
    assert summary["best"]["edp"] == pytest.approx(sum(r.obs.edp for r in best_rounds) / len(best_rounds))
    assert summary["best"]["cost"] == pytest.approx(summary["best"]["edp"])


class FailingEngine:
    """Raises after a number of batches, like an engine that dies mid-run."""

    name = "failing"
    needs_warmup = False

    def __init__(self, inner, fail_after_batches):
        self.inner, self.left = inner, fail_after_batches

    def generate(self, batch):
        self.left -= 1
        if self.left < 0:
            raise EngineError("engine died")
        return self.inner.generate(batch)

    def describe(self):
        return {}

    def close(self):
        pass


def test_crash_keeps_finished_rounds(tmp_path):
    backends = open_backends(device="sim")
    path = tmp_path / "run.jsonl"
    with pytest.raises(EngineError), RunLog(path) as log:
        run_tune(backends, batches="4", budget=6, run_log=log, engine=FailingEngine(backends.engine, 25))
    assert [r.round for r in read_run_log(path).rounds] == [0, 1, 2]  # 8 batches per round; the 26th failed


def test_torn_last_line_is_skipped(tmp_path):
    backends = open_backends(device="sim")
    path = tmp_path / "run.jsonl"
    with RunLog(path) as log:
        run_tune(backends, budget=1, run_log=log)
    text = path.read_text()
    path.write_text(text + '{"type": "rou')
    assert len(read_run_log(path).rounds) == 2


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"type": "round", "round": "zero"}', "not a valid round record"),
        ('{"type": "round", "round": 0, "freq_mhz": NaN}', "not a JSON object"),
        ("[" * 100000 + "]" * 100000, "not a JSON object"),
        ('{"type": 3}', "no 'type'"),
    ],
)
def test_run_logs_of_the_wrong_shape_are_clear_errors(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n\n")
    with pytest.raises(ConfigError, match=message):
        read_run_log(path)


def test_output_is_never_silently_overwritten(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text("keep me\n")
    with pytest.raises(ConfigError, match="exists"):
        RunLog(path)
    with pytest.raises(ConfigError, match="directory"):
        RunLog(tmp_path)
    assert path.read_text() == "keep me\n"


def test_weighted_objective_normalises_by_baseline():
    result = run_tune(open_backends(device="sim"), objective=Objective("weighted", 0.5), budget=3)
    assert result.rounds[0].cost == pytest.approx(1.0)


class AllFailEngine:
    """Answers every request with an error, like a server that is down."""

    name = "down"
    needs_warmup = False

    def __init__(self, inner, *, fail_from_batch: int = 0):
        self.inner, self.batches, self.fail_from_batch = inner, 0, fail_from_batch

    def generate(self, batch):
        self.batches += 1
        out = self.inner.generate(batch)
        if self.batches > self.fail_from_batch:
            return [Completion("", 0, None, "connection refused") for _ in out]
        return out

    def describe(self):
        return {}

    def close(self):
        pass


def test_a_run_whose_every_request_fails_is_an_error_naming_the_cause():
    backends = open_backends(device="sim")
    with pytest.raises(EngineError, match="connection refused"):
        run_tune(backends, engine=AllFailEngine(backends.engine), budget=3)


def test_failed_rounds_are_recorded_and_never_chosen(tmp_path):
    backends = open_backends(device="sim")
    engine = AllFailEngine(backends.engine, fail_from_batch=2)  # the baseline (2 batches of 28) succeeds
    path = tmp_path / "run.jsonl"
    with RunLog(path) as log, pytest.raises(EngineError, match="every search round failed"):
        run_tune(backends, engine=engine, budget=3, run_log=log)
    rounds = read_run_log(path).rounds
    assert [r.cost is None for r in rounds] == [False, True, True, True]
    assert all(r.obs.failed for r in rounds[1:])
