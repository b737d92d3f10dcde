"""Trace replay: parsing with line-numbered errors, windows that wrap, and tuning on a trace."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edpilot.cli import app
from edpilot.errors import WorkloadError
from edpilot.workload import TraceWorkload, read_trace


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def entry(t, prompt="hi there", n=16):
    return json.dumps({"arrival_s": t, "prompt": prompt, "max_new_tokens": n})


@pytest.mark.parametrize(
    "bad,message",
    [
        ("{not json", "t.jsonl:2: not valid JSON"),
        ('{"arrival_s": 1.0, "prompt": "x"}', "t.jsonl:2: missing max_new_tokens"),
        ('{"arrival_s": -1, "prompt": "x", "max_new_tokens": 3}', "t.jsonl:2: arrival_s must be a number"),
        ('{"arrival_s": 1e308, "prompt": "x", "max_new_tokens": 3}', "t.jsonl:2: arrival_s must be a number"),
        ('{"arrival_s": 2, "prompt": "x", "max_new_tokens": 1000000000}', "t.jsonl:2: max_new_tokens must be"),
        ("[" * 100000 + "]" * 100000, "t.jsonl:2: nested too deeply"),
        ('{"arrival_s": 2, "prompt": "", "max_new_tokens": 3}', "t.jsonl:2: prompt must be a non-empty string"),
        ('{"arrival_s": 2, "prompt": "x", "max_new_tokens": 0}', "t.jsonl:2: max_new_tokens must be a whole number"),
        ('{"arrival_s": 0.5, "prompt": "x", "max_new_tokens": 3}', "t.jsonl:2: arrival_s 0.5 is before"),
        ("[1, 2]", "t.jsonl:2: expected an object"),
        (
            '{"arrival_s": ' + "9" * 5001 + ', "prompt": "x", "max_new_tokens": 3}',
            r"t.jsonl:2: not a trace entry \(Exceeds",
        ),
        (
            '{"arrival_s": 2, "prompt": "x", "max_new_tokens": 1' + "0" * 30 + "}",
            r"max_new_tokens must be a whole number in \[1, \d+\], got 10{30}$",
        ),
    ],
)
def test_malformed_lines_name_line_and_problem(tmp_path, bad, message):
    path = write(tmp_path / "t.jsonl", [entry(1.0), bad])
    with pytest.raises(WorkloadError, match=message):
        read_trace(path)


def test_empty_and_missing(tmp_path):
    with pytest.raises(WorkloadError, match="no requests"):
        read_trace(write(tmp_path / "e.jsonl", [""]))
    with pytest.raises(WorkloadError, match="does not exist"):
        read_trace(tmp_path / "none.jsonl")


def test_windows_take_the_next_requests_and_wrap(tmp_path):
    path = write(tmp_path / "t.jsonl", [entry(10.0, "a", 4), entry(11.0, "b", 5), entry(13.0, "c", 6)])
    wl = TraceWorkload(read_trace(path))
    rng = np.random.default_rng(0)
    first = wl.requests(2, rng)
    assert [(r.arrival_s, r.prompt, r.max_new_tokens) for r in first] == [(0.0, "a", 4), (1.0, "b", 5)]
    second = wl.requests(3, rng)  # c, then wraps to a, b one trace period (3 s + mean gap 1.5 s) later
    assert [r.prompt for r in second] == ["c", "a", "b"]
    assert [r.arrival_s for r in second] == pytest.approx([0.0, 1.5, 2.5])


def test_tune_on_a_trace(tmp_path):
    path = write(tmp_path / "t.jsonl", [entry(0.5 * i, f"prompt number {i}", 32) for i in range(40)])
    log = tmp_path / "run.jsonl"
    r = CliRunner().invoke(app, ["tune", "--trace", str(path), "--budget", "5", "--output", str(log), "--json"])
    assert r.exit_code == 0, r.output
    header = json.loads(log.read_text().splitlines()[0])
    assert header["arrivals"] == "trace"
    bad = write(tmp_path / "bad.jsonl", [entry(0.0), "oops"])
    r = CliRunner().invoke(app, ["tune", "--trace", str(bad)])
    assert r.exit_code == 2 and "bad.jsonl:2" in r.stderr


def test_a_trace_at_one_instant_is_refused_not_replayed_forever(tmp_path):
    """Every arrival at one instant gives a stream that never advances: one line, exit 2 (found by the fuzz test)."""
    path = tmp_path / "burst.jsonl"
    path.write_text(
        "".join(json.dumps({"arrival_s": 5.0, "prompt": "Hi.", "max_new_tokens": 8}) + "\n" for _ in range(3))
    )
    with pytest.raises(WorkloadError, match="all fall at 5 s"):
        TraceWorkload(read_trace(path))
    r = CliRunner().invoke(app, ["tune", "--trace", str(path), "--budget", "2"])
    assert r.exit_code == 2 and "all fall at 5 s" in r.output
