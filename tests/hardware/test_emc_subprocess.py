"""The memory clock is always given back: real `edpilot apply` processes, real signals, fake Jetson trees."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.hardware.fake_jetson import EMC_DVFS_HZ, ORIN_LEVELS_HZ, build_tree
from tests.hardware.test_signals_subprocess import wait_for

GPU_ORIGINAL = (str(ORIN_LEVELS_HZ[0]), str(ORIN_LEVELS_HZ[-1]))


def env_for(fake, state_dir):
    return {**os.environ, "EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(state_dir)}


def edpilot(*args, env):
    return subprocess.run([sys.executable, "-m", "edpilot", *args], env=env, capture_output=True, text=True, timeout=60)


def given_back(fake, state_dir):
    gpu = (fake.read("min_freq"), fake.read("max_freq")) == GPU_ORIGINAL
    emc = (fake.read_emc("mrq_rate_locked"), fake.read_emc("rate")) == ("0", str(EMC_DVFS_HZ))
    return gpu and emc and not any(p.endswith(".json") for p in os.listdir(state_dir))


def hold(fake, state_dir, *flags):
    cmd = [sys.executable, "-m", "edpilot", "apply", "--device", "jetson", *flags, "--hold"]
    proc = subprocess.Popen(cmd, env=env_for(fake, state_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pinned = wait_for(lambda: fake.read_emc("rate") == "665600000" and fake.read_emc("mrq_rate_locked") == "1")
    assert pinned, f"not pinned (exit {proc.poll()})"
    return proc


@pytest.mark.parametrize("jetpack", [5, 6])
def test_sigkill_mid_run_then_edpilot_restore_gives_both_clocks_back(tmp_path, jetpack):
    fake = build_tree(tmp_path / "root", jetpack=jetpack).start()
    state_dir = tmp_path / "state"
    try:
        proc = hold(fake, state_dir, "--freq", "522.75", "--emc", "665.6")
        assert wait_for(lambda: fake.read("cur_freq") == "522750000")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        assert fake.read_emc("rate") == "665600000"  # a SIGKILL cannot be caught: the clocks stay pinned
        r = edpilot("restore", env=env_for(fake, state_dir))
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("restored") == 2 and given_back(fake, state_dir)
    finally:
        fake.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_gives_the_memory_clock_back(tmp_path, sig):
    fake = build_tree(tmp_path / "root").start()
    state_dir = tmp_path / "state"
    try:
        proc = hold(fake, state_dir, "--emc", "665.6")
        proc.send_signal(sig)
        proc.wait(timeout=20)
        assert given_back(fake, state_dir), proc.stderr.read().decode()
    finally:
        fake.stop()


def test_apply_without_hold_leaves_it_until_restore(tmp_path):
    fake = build_tree(tmp_path / "root").start()
    state_dir = tmp_path / "state"
    env = env_for(fake, state_dir)
    try:
        r = edpilot("apply", "--device", "jetson", "--emc", "204", env=env)
        assert r.returncode == 0 and "memory 204 MHz" in r.stdout, r.stderr
        assert fake.read_emc("rate") == "204000000" and fake.read_emc("mrq_rate_locked") == "1"
        assert edpilot("restore", env=env).returncode == 0 and given_back(fake, state_dir)
    finally:
        fake.stop()


@pytest.mark.parametrize(
    "debugfs,words",
    [("unmounted", "sudo mount -t debugfs none"), ("no-emc", "no BPMP memory clock")],
)
def test_refusal_is_one_line_exit_2_and_nothing_changes(tmp_path, debugfs, words):
    fake = build_tree(tmp_path / "root", debugfs=debugfs).start()
    state_dir = tmp_path / "state"
    try:
        r = edpilot("apply", "--device", "jetson", "--freq", "522.75", "--emc", "665.6", env=env_for(fake, state_dir))
        assert r.returncode == 2 and words in r.stderr and "Nothing was changed" in r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 3  # one line, wrapped by rich
        assert (fake.read("min_freq"), fake.read("max_freq")) == GPU_ORIGINAL
        assert not state_dir.exists() or not list(state_dir.glob("*.json"))
    finally:
        fake.stop()


def test_a_level_that_is_not_one_names_the_nearest(tmp_path):
    fake = build_tree(tmp_path / "root").start()
    try:
        r = edpilot("apply", "--device", "jetson", "--emc", "1600", env=env_for(fake, tmp_path / "state"))
        assert r.returncode == 2 and "nearest is 2133" in r.stderr and "Traceback" not in r.stderr
        assert fake.read_emc("mrq_rate_locked") == "0"
    finally:
        fake.stop()


def test_two_signals_0_to_50_ms_apart_still_give_both_clocks_back(tmp_path):
    rng = random.Random(19)
    runs = []
    try:
        for i in range(4):
            fake = build_tree(tmp_path / f"root{i}").start()
            runs.append((fake, tmp_path / f"state{i}", None))
        runs = [(f, d, hold(f, d, "--freq", "522.75", "--emc", "665.6")) for f, d, _ in runs]
        for _, _, proc in runs:
            proc.send_signal(signal.SIGTERM)
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGHUP)
        for _, _, proc in runs:
            proc.wait(timeout=20)
        stderr = [proc.stderr.read().decode() for _, _, proc in runs]
        assert [given_back(f, d) for f, d, _ in runs] == [True] * 4, stderr
        assert not any("Traceback" in text for text in stderr), stderr
    finally:
        for fake, _, proc in runs:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            fake.stop()
