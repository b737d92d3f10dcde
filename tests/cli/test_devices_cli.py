"""`edpilot apply`, `restore` and `devices` as real processes against a fake Jetson tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.hardware.fake_jetson import ORIN_LEVELS_HZ, build_tree

ORIGINAL = {"min_freq": str(ORIN_LEVELS_HZ[0]), "max_freq": str(ORIN_LEVELS_HZ[-1]), "governor": "nvhost_podgov"}


@pytest.fixture
def env(tmp_path):
    fake = build_tree(tmp_path / "root").start()
    environ = {**os.environ, "EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(tmp_path / "state")}
    yield fake, environ
    fake.stop()


def edpilot(*args, env, **kw):
    return subprocess.run([sys.executable, "-m", "edpilot", *args], env=env, capture_output=True, text=True, **kw)


def spawn(*args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "edpilot", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(predicate, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def files(fake):
    return {name: fake.read(name) for name in ORIGINAL}


def test_apply_hold_sigkill_then_restore(env):
    fake, environ = env
    proc = spawn("apply", "--device", "jetson", "--freq", "522.75", "--hold", env=environ)
    try:
        assert wait_for(lambda: fake.read("max_freq") == "522750000"), proc.stderr.read() if proc.poll() else ""
        assert wait_for(lambda: fake.read("cur_freq") == "522750000")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert fake.read("min_freq") == fake.read("max_freq") == "522750000"  # nobody undid it
    r = edpilot("restore", env=environ)
    assert r.returncode == 0, r.stderr
    assert "restored jetson:" in r.stdout
    assert files(fake) == ORIGINAL
    assert edpilot("restore", env=environ).stdout.strip() == "nothing to restore"


def test_tuning_run_sigkill_then_restore(env, tmp_path):
    fake, environ = env
    log = tmp_path / "run.jsonl"
    proc = spawn(
        "tune",
        "--device",
        "jetson",
        "--engine",
        "sim",
        "--strategy",
        "grid",
        "--budget",
        "40",
        "--freqs",
        "216.75,420.75",
        "--batches",
        "1",
        "--requests-per-round",
        "2",
        "--arrivals",
        "saturated",
        "--output",
        str(log),
        env=environ,
    )
    try:
        assert wait_for(lambda: log.exists() and log.read_text().count('"type": "round"') >= 2), (
            proc.stderr.read() if proc.poll() is not None else "no rounds"
        )
        assert fake.read("max_freq") in ("216750000", "420750000")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert files(fake) != ORIGINAL
    rounds = [json.loads(line) for line in log.read_text().splitlines() if '"round"' in line]
    assert rounds[0]["freq_mhz"] == 420.75 and rounds[0]["energy_per_request_j"] > 0
    assert edpilot("restore", env=environ).returncode == 0
    assert files(fake) == ORIGINAL


def test_apply_hold_sigterm_undoes_by_itself(env):
    fake, environ = env
    proc = spawn("apply", "--device", "jetson", "--freq", "1300.5", "--hold", env=environ)
    assert wait_for(lambda: fake.read("min_freq") == "1300500000")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert files(fake) == ORIGINAL
    assert edpilot("restore", env=environ).stdout.strip() == "nothing to restore"


def test_apply_without_hold_leaves_it_pinned_until_restore(env):
    fake, environ = env
    r = edpilot("apply", "--device", "jetson", "--freq", "930.75", env=environ)
    assert r.returncode == 0, r.stderr
    assert "edpilot restore" in r.stdout
    assert fake.read("max_freq") == "930750000"
    edpilot("restore", env=environ)
    assert files(fake) == ORIGINAL


def test_apply_names_the_nearest_level(env):
    fake, environ = env
    r = edpilot("apply", "--device", "jetson", "--freq", "816", env=environ)
    assert r.returncode == 2
    assert "nearest level is 828.75 MHz" in r.stderr and "Traceback" not in r.stderr
    assert files(fake) == ORIGINAL


def test_devices_json_describes_the_board(env):
    fake, environ = env
    r = edpilot("devices", "--device", "jetson", "--json", env=environ)
    assert r.returncode == 0, r.stderr
    (info,) = json.loads(r.stdout)
    assert info["name"] == "jetson:17000000.ga10b"
    assert info["current_freq_mhz"] == 624.75 and info["governor"] == "nvhost_podgov"
    assert set(info["rails_w"]) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}
    assert info["update_interval_ms"] == 430 and info["can_set_clocks"] is True


def test_dry_run_tune_measures_without_touching_clocks(env, tmp_path):
    fake, environ = env
    log = tmp_path / "dry.jsonl"
    r = edpilot(
        "tune",
        "--device",
        "jetson",
        "--dry-run",
        "--strategy",
        "grid",
        "--budget",
        "1",
        "--freqs",
        "216.75,420.75",
        "--batches",
        "1",
        "--requests-per-round",
        "2",
        "--arrivals",
        "saturated",
        "--output",
        str(log),
        env=environ,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "dry run" in r.stderr and "meter updates" in r.stderr
    rounds = [json.loads(line) for line in log.read_text().splitlines() if '"round"' in line]
    assert [x["freq_mhz"] for x in rounds] == [420.75, 216.75]
    assert all(x["actual_freq_mhz"] == 624.75 for x in rounds)
    assert files(fake) == ORIGINAL
