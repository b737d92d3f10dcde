"""The tuning loop writes its log as it goes; a crash keeps what was measured; failures are never success."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edpilot.backends import open_backends
from edpilot.cli import app
from edpilot.engine.base import Completion
from edpilot.errors import ConfigError, EngineError
from edpilot.objective import Objective
from edpilot.records import RoundRecord, RunHeader, Summary
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
    assert summary.rounds == 5 and summary.objective == "edp"
    assert summary.baseline["edp"] == pytest.approx(r0.obs.edp)
    assert summary.edp_gain_pct == pytest.approx(result.summary.edp_gain_pct)
    best_rounds = [r for r in data.rounds if r.config == summary.best_config]
    assert summary.best["edp"] == pytest.approx(sum(r.obs.edp for r in best_rounds) / len(best_rounds))
    assert summary.best["cost"] == pytest.approx(summary.best["edp"])
    assert [r.to_dict() for r in data.rounds] == [json.loads(line) for line in path.read_text().splitlines()[:-1]]


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
        ('{"type": "round", "round": 0, "freq_mhz": NaN}', "NaN is not a number"),
        ('{"type": "round", "round": ' + "9" * 5000 + "}", r"Exceeds the limit \(4300 digits\)"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        ('{"type": 3}', "no 'type'"),
        ("[1, 2, 3]", "no 'type'"),
    ],
)
def test_run_logs_of_the_wrong_shape_are_clear_errors(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n\n")
    with pytest.raises(ConfigError, match=f"^{tmp_path}/bad.jsonl:1: .*{message}"):
        read_run_log(path)


@pytest.fixture(scope="module")
def good_log(tmp_path_factory):
    """A real `edpilot tune --output` log: its header, first round and summary as dicts."""
    path = tmp_path_factory.mktemp("log") / "run.jsonl"
    result = CliRunner().invoke(app, ["tune", "--budget", "2", "--output", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = read_run_log(path)
    assert data.header.device_name == "sim:orin-agx-32gb" and data.header.baseline_config == data.rounds[0].config
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert RunHeader.from_dict(lines[0], where="1").to_dict() == lines[0]
    assert Summary.from_dict(lines[-1], where="4").to_dict() == lines[-1]
    return lines[0], next(line for line in lines if line["type"] == "round"), lines[-1]


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"freq_mhz": "fast"}, "'freq_mhz' must be a finite number > 0, got 'fast'"),
        ({"freq_mhz": [[[[900]]]]}, "'freq_mhz' must be a finite number > 0, got a list"),
        ({"freq_mhz": 0}, "'freq_mhz' must be a finite number > 0"),
        ({"batch_size": 2.5}, "'batch_size' must be a whole number >= 1"),
        ({"batch_size": True}, "'batch_size' must be a whole number >= 1"),
        ({"mean_latency_s": float("nan")}, "'mean_latency_s' must be a finite number"),
        ({"mean_batch_s": None}, "'mean_batch_s' is missing"),
        ({"energy_per_request_j": float("inf")}, "'energy_per_request_j' must be a finite number"),
        ({"energy_per_request_j": -1.0}, "'energy_per_request_j' must be a finite number >= 0"),
        ({"cost": 10**400}, "'cost' must be a finite number"),
        ({"keeps_up": "yes"}, "'keeps_up' must be true or false, got 'yes'"),
        ({"first_error": 3}, "'first_error' must be text, got 3"),
        ({"role": ["search"]}, "'role' must be text, got a list"),
        ({"failed_requests": 99}, r"'failed_requests' \(99\) exceeds 'requests'"),
        (
            {"requests": 28, "failed_requests": 28, "first_error": "refused"},
            "'cost' must be null: every request of the window failed",
        ),
        ({"round": None}, "'round' is missing"),
    ],
)
def test_a_round_of_the_wrong_shape_names_the_field(good_log, bad, message):
    _, round0, _ = good_log
    with pytest.raises(ConfigError, match=f"^run.jsonl:2: not a valid round record: {message}"):
        RoundRecord.from_dict({**round0, **bad}, where="run.jsonl:2")


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"objective": {"name": "edp"}}, "'objective' must be text, got a JSON object"),
        ({"objective": "fastest"}, "unknown objective 'fastest'"),
        ({"energy_scope": "gpu"}, "'energy_scope' must be one of: total, active"),
        ({"device": {"name": 3}}, "'name' must be text, got 3"),
        ({"freqs_mhz": [900, "x"]}, "'freqs_mhz' must be a finite number > 0, got 'x'"),
        ({"arrival_rate_per_s": -1}, "'arrival_rate_per_s' must be a finite number >= 0"),
        ({"baseline": {"freq_mhz": 900}}, "'batch_size' is missing in 'baseline'"),
        ({"seed": None}, "'seed' is missing"),
    ],
)
def test_a_header_of_the_wrong_shape_names_the_field(good_log, bad, message):
    header, _, _ = good_log
    with pytest.raises(ConfigError, match=f"^run.jsonl:1: not a valid run header: {message}"):
        RunHeader.from_dict({**header, **bad}, where="run.jsonl:1")


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"best": [500, 4]}, "'best' must be a JSON object, got a list"),
        ({"baseline": {"freq_mhz": 900, "batch_size": 0}}, "'batch_size' must be a whole number >= 1"),
        ({"best": {"freq_mhz": 900, "batch_size": 4, "edp": "low"}}, "'edp' must be a finite number, got 'low'"),
        ({"rounds": -1}, "'rounds' must be a whole number >= 0"),
    ],
)
def test_a_summary_of_the_wrong_shape_names_the_field(good_log, bad, message):
    _, _, summary = good_log
    with pytest.raises(ConfigError, match=f"^run.jsonl:9: not a valid summary record: {message}"):
        Summary.from_dict({**summary, **bad}, where="run.jsonl:9")


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
