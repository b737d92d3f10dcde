"""A full disk, a file-size limit or a failed start: one line and exit 2, and what was measured stays whole."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edpilot.cli import app
from edpilot.errors import ConfigError
from edpilot.runlog import RunLog, read_run_log
from tests.hardware.fake_jetson import build_tree

runner = CliRunner()


def edpilot(*args: str, env: dict[str, str] | None = None, preexec_fn=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edpilot", *args],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=preexec_fn,
        timeout=300,
    )


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str):
    """A tmpfs of `size` mounted at `path` (root only); skip where it cannot be mounted."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def assert_one_line_and_rounds_kept(p: subprocess.CompletedProcess[str], log: Path, why: str) -> None:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    said = re.search(rf"cannot write the run log .*: {why}; the (\d+) round\(s\) before it are kept", p.stderr)
    assert said, p.stderr
    data = read_run_log(log)  # every line whole: no torn line is left at the end
    assert log.read_bytes().endswith(b"\n")
    assert len(data.rounds) == int(said.group(1)) > 0
    assert [r.round for r in data.rounds] == list(range(len(data.rounds)))


def test_a_full_disk_under_output_is_one_line_and_keeps_the_rounds(tmp_path):
    with tiny_tmpfs(tmp_path / "disk", "64k") as disk:
        log = disk / "run.jsonl"
        p = edpilot("tune", "--budget", "400", "--output", str(log))
        assert_one_line_and_rounds_kept(p, log, "No space left on device")


def test_a_file_size_limit_under_output_is_one_line_and_keeps_the_rounds(tmp_path):
    log = tmp_path / "run.jsonl"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    p = edpilot("tune", "--budget", "100", "--output", str(log), preexec_fn=limit)
    assert_one_line_and_rounds_kept(p, log, "File too large")
    assert log.stat().st_size <= 20_000


def test_a_full_state_directory_is_one_line_and_the_clocks_stay_untouched(tmp_path):
    fake = build_tree(tmp_path / "root").start()
    try:
        before = fake.read("max_freq"), fake.read("min_freq")
        with tiny_tmpfs(tmp_path / "state", "16k") as state:
            with contextlib.suppress(OSError), open(state / "fill", "wb") as fill:
                fill.write(b"\0" * 64 * 1024)  # more than fits: fills it to the last block
            env = {**os.environ, "EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(state)}
            args = ["--budget", "2", "--requests-per-round", "4", "--arrival-rate", "1000"]  # arrivals need not wait
            p = edpilot("tune", "--device", "jetson", *args, env=env)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "No space left on device" in p.stderr
        assert (fake.read("max_freq"), fake.read("min_freq")) == before
    finally:
        fake.stop()


def test_a_start_that_fails_before_a_round_writes_nothing_so_the_retry_runs(tmp_path):
    log = tmp_path / "run.jsonl"
    r = runner.invoke(app, ["tune", "--device", "cpu", "--budget", "2", "--output", str(log)])
    assert r.exit_code == 2 and "needs an energy meter" in r.stderr
    assert not log.exists()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        "tune",
        "--device",
        "cpu",
        "--objective",
        "latency",
        "--budget",
        "2",
        "--arrival-rate",
        "1000",
        "--output",
        str(log),
    ]
    r = runner.invoke(app, [*args, "--engine", f"openai:http://127.0.0.1:{port}", "--request-timeout", "5"])
    assert r.exit_code == 2 and "baseline round failed" in r.stderr
    assert not log.exists()
    r = runner.invoke(app, ["tune", "--budget", "2", "--output", str(log)])  # the retry needs no --overwrite
    assert r.exit_code == 0, r.output
    assert len(read_run_log(log).rounds) == 3


def test_a_failed_start_with_overwrite_keeps_the_old_log(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text("an earlier run\n")
    r = runner.invoke(app, ["tune", "--device", "cpu", "--budget", "2", "--output", str(log), "--overwrite"])
    assert r.exit_code == 2
    assert log.read_text() == "an earlier run\n"


def test_the_header_waits_for_the_first_round(tmp_path):
    from tests.report.logs import header, rnd

    path = tmp_path / "run.jsonl"
    with RunLog(path) as log:
        log.write(header())
        assert not path.exists()
        log.write(rnd(0, 900.0, 4, 2.0, 1.0))
        assert [r.round for r in read_run_log(path).rounds] == [0] and read_run_log(path).header is not None
    with RunLog(tmp_path / "other.jsonl") as log:
        log.write(header())
    assert not (tmp_path / "other.jsonl").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_at_once(tmp_path):
    with pytest.raises(ConfigError, match="is not a writable folder"):
        RunLog(Path("/proc/self/run.jsonl"))
