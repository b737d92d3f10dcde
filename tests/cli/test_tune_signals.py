"""A stopped `tune` (real processes, real signals): the summary of what it measured, one accurate line, no noise."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from edpilot.runlog import read_run_log
from tests.hardware.fake_jetson import ORIN_LEVELS_HZ, build_tree

ORIGINAL = {"min_freq": str(ORIN_LEVELS_HZ[0]), "max_freq": str(ORIN_LEVELS_HZ[-1]), "governor": "nvhost_podgov"}


def start_tune(log, *args, env=None):
    cmd = [sys.executable, "-m", "edpilot", "tune", "--budget", "100000", "--output", str(log), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_rounds(proc, log, rounds, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"tune ended early: {proc.returncode} {proc.stderr.read()}")
        if log.exists() and log.read_text().count('"type": "round"') >= rounds:
            return
        time.sleep(0.02)
    raise AssertionError("no rounds measured in time")


def assert_summary_of_what_was_measured(proc, log, out, err, sig):
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.strip().splitlines() if "stopped" in line]
    assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
    name, where = signal.Signals(sig).name, re.escape(str(log))
    said = re.fullmatch(
        rf"edpilot: stopped by {name} after (\d+) measured round\(s\), summary written to {where}; (.*)", lines[0]
    )
    assert said, lines[0]
    data = read_run_log(log)
    assert data.summary is not None and data.summary.interrupted
    assert len(data.rounds) == int(said.group(1)) and data.summary.rounds == len(data.rounds) - 1
    return said.group(2), data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stopped_tune_writes_its_summary_and_prints_the_table(tmp_path, sig):
    log = tmp_path / "run.jsonl"
    proc = start_tune(log)
    wait_for_rounds(proc, log, 3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    restored, data = assert_summary_of_what_was_measured(proc, log, out, err, sig)
    assert restored == "nothing to restore: sim:orin-agx-32gb is simulated, no real clock was changed"
    assert "chosen config vs baseline" in out and "(interrupted: chosen from what was measured)" in out
    assert f"{data.summary.rounds} search rounds" in out


def test_a_stopped_tune_on_a_jetson_says_the_clocks_were_restored_and_they_were(tmp_path):
    fake = build_tree(tmp_path / "root").start()
    try:
        env = {**os.environ, "EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(tmp_path / "state")}
        log = tmp_path / "run.jsonl"
        args = ["--device", "jetson", "--output-tokens", "4", "--requests-per-round", "2", "--batches", "1,2"]
        proc = start_tune(log, *args, "--arrival-rate", "50", env=env)
        wait_for_rounds(proc, log, 2)
        assert {n: fake.read(n) for n in ORIGINAL} != ORIGINAL  # pinned while it runs
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        restored, _ = assert_summary_of_what_was_measured(proc, log, out, err, signal.SIGTERM)
        assert restored.startswith("clocks restored: jetson:")
        assert {n: fake.read(n) for n in ORIGINAL} == ORIGINAL
        assert not list((tmp_path / "state").glob("*.json"))
    finally:
        fake.stop()


def test_hup_then_int_20_ms_apart_is_one_clean_stop(tmp_path):
    runs = []
    for i in range(6):
        log = tmp_path / f"run{i}.jsonl"
        runs.append((log, start_tune(log)))
    try:
        for log, proc in runs:
            wait_for_rounds(proc, log, 2)
        for _, proc in runs:
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
        for log, proc in runs:
            out, err = proc.communicate(timeout=60)
            assert_summary_of_what_was_measured(proc, log, out, err, signal.SIGHUP)
    finally:
        for _, proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_apply_hold_stopped_by_hup_then_int_restores_and_says_so(tmp_path):
    runs = []
    try:
        for i in range(6):
            fake = build_tree(tmp_path / f"root{i}").start()
            env = {**os.environ, "EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(tmp_path / f"s{i}")}
            cmd = [sys.executable, "-m", "edpilot", "apply", "--device", "jetson", "--freq", "522.75", "--hold"]
            runs.append((fake, subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)))
        for fake, proc in runs:
            deadline = time.monotonic() + 60
            while fake.read("cur_freq") != "522750000":
                assert time.monotonic() < deadline and proc.poll() is None, "never pinned"
                time.sleep(0.02)
        for _, proc in runs:
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
        for fake, proc in runs:
            err = proc.communicate(timeout=60)[1]
            assert proc.returncode == 128 + signal.SIGHUP, err  # not killed by the late SIGINT (-2)
            assert "Exception ignored" not in err and "Traceback" not in err, err
            assert err.strip().splitlines()[-1] == (
                "edpilot: stopped by SIGHUP; clocks restored: what this command pinned has been put back"
            )
            assert {n: fake.read(n) for n in ORIGINAL} == ORIGINAL
    finally:
        for fake, proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            fake.stop()
