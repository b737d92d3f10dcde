"""Fuzz the readers of files users hand edpilot (profiles, traces, run logs) and the CLI paths that take them.

Whatever the bytes, a reader returns or raises an EdpilotError (one line), and the CLI exits 0 or 2 with no
traceback. Inputs are mostly well-formed with one field replaced by something hostile (a 30-digit number, a
5001-digit integer, 1e-300, NaN, brackets nested thousands deep), so the fuzz reaches past the parser into the
code that uses the values; raw bytes cover the parser itself.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edpilot.cli import app
from edpilot.errors import EdpilotError
from edpilot.runlog import read_run_log
from edpilot.sim.profile import read_profile
from edpilot.workload.trace import read_trace

runner = CliRunner()
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

HOSTILE_TOKENS = [
    "",
    "0",
    "-1",
    "nan",
    "inf",
    "-inf",
    "1e-300",
    "1e300",
    "1" + "0" * 30,
    "9" * 5001,
    "0x10",
    "2.5",
    " ",
    "é",
    "[" * 3000,
]
token = st.one_of(
    st.sampled_from(HOSTILE_TOKENS),
    st.sampled_from(HOSTILE_TOKENS),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)
BIG = {'"<30 digits>"': "1" + "0" * 30, '"<5001 digits>"': "9" * 5001, '"<nested>"': "[" * 3000 + "]" * 3000}
json_value = st.one_of(
    st.sampled_from([None, True, 0, -1, 1e-300, 1e300, "", "x", [], {}, *(k.strip('"') for k in BIG)]),
    st.sampled_from([k.strip('"') for k in BIG]),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)


def raw_json(value: object) -> str:
    """JSON text with the placeholders of BIG spelled out as the raw numbers and brackets json.dumps cannot write."""
    text = json.dumps(value)
    for placeholder, raw in BIG.items():
        text = text.replace(placeholder, raw)
    return text


def write(data: bytes, suffix: str) -> Path:
    handle = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)  # noqa: SIM115 - closed below
    with handle:
        handle.write(data)
    return Path(handle.name)


def reads_cleanly(reader, path: Path) -> None:
    try:
        reader(path)
    except EdpilotError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600, str(exc)[:200]


def runs_cleanly(args: list[str]) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code in (0, 2), (args, r.exit_code, repr(r.exception), r.output[-500:])
    assert "Traceback" not in r.output
    if r.exit_code == 2:
        assert len(r.stderr.strip().splitlines()) == 1 and len(r.stderr) < 800, r.stderr[:300]


@st.composite
def profile_text(draw) -> str:
    """A valid 2 x 2 profile with one value, or one whole column, replaced by a hostile token."""
    rows = [[f, b, f"{0.2 + b * 0.05 * 1000 / f:.4f}", f"{b * f / 100:.3f}"] for f in (400, 800) for b in (1, 2)]
    idle = draw(st.sampled_from(["5", "0"]) | token)
    col, value = draw(st.integers(0, 3)), draw(token)
    for row in rows if draw(st.booleans()) else [rows[draw(st.integers(0, len(rows) - 1))]]:
        row[col] = value
    lines = [f"# idle_power_w: {idle}", "freq_mhz,batch_size,latency_s,energy_j"]
    return "\n".join(lines + [",".join(map(str, row)) for row in rows]) + "\n"


@st.composite
def trace_text(draw) -> str:
    """A valid 4-request trace with one field of one line (or of every line) replaced by a hostile value."""
    entries = [{"arrival_s": float(i), "prompt": "Summarize this.", "max_new_tokens": 8} for i in range(4)]
    key, value = draw(st.sampled_from(["arrival_s", "prompt", "max_new_tokens"])), draw(json_value)
    for entry in entries if draw(st.booleans()) else [entries[draw(st.integers(0, 3))]]:
        entry[key] = value
    return "\n".join(raw_json(e) for e in entries) + "\n"


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_raw_bytes_never_escape_the_readers(data):
    for reader, suffix in ((read_profile, ".csv"), (read_trace, ".jsonl"), (read_run_log, ".jsonl")):
        reads_cleanly(reader, write(data, suffix))


@FUZZ
@given(text=profile_text())
def test_tune_profile_never_tracebacks(text):
    runs_cleanly(["tune", "--profile", str(write(text.encode(), ".csv")), "--budget", "2", "--json"])


@FUZZ
@given(text=trace_text())
def test_tune_trace_never_tracebacks(text):
    runs_cleanly(["tune", "--trace", str(write(text.encode(), ".jsonl")), "--budget", "2", "--json"])


_RUN_LOG: list[str] = []


def good_run_log() -> list[str]:
    if not _RUN_LOG:
        path = Path(tempfile.mkdtemp()) / "run.jsonl"
        assert runner.invoke(app, ["tune", "--budget", "3", "--output", str(path), "--json"]).exit_code == 0
        _RUN_LOG.extend(path.read_text().splitlines())
    return list(_RUN_LOG)


@FUZZ
@given(pick=st.data())
def test_report_of_a_damaged_run_log_never_tracebacks(pick):
    lines = good_run_log()
    index = pick.draw(st.integers(0, len(lines) - 1))
    record = json.loads(lines[index])
    key = pick.draw(st.sampled_from(sorted(record)))
    record[key] = pick.draw(json_value)
    lines[index] = raw_json(record)
    runs_cleanly(["report", str(write(("\n".join(lines) + "\n").encode(), ".jsonl"))])
