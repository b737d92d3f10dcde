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


def test_devices_with_nvml_installed_and_no_driver(env):
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        pytest.skip("an NVIDIA driver is present")
    except pynvml.NVMLError:
        pass
    _, environ = env
    r = edpilot("devices", "--device", "nvml", env=environ)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "install the NVIDIA driver" in r.stderr
    r = edpilot("devices", "--json", env=environ)  # the Jetson is still shown; nvml gets one note
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("note: nvml:")]
    names = [d["name"] for d in json.loads(r.stdout)]
    assert names[:2] == ["jetson:17000000.ga10b", "cpu"] and "nvml:0" not in names


def test_cpu_shows_no_invented_clock(env):
    _, environ = env
    r = edpilot("devices", "--device", "cpu", "--json", env=environ)
    (info,) = json.loads(r.stdout)
    assert info["freqs_mhz"] == [] and info["can_set_clocks"] is False and info["has_meter"] is False


def test_commands_that_must_not_touch_clocks_leave_a_held_pin(env, tmp_path):
    fake, environ = env
    proc = spawn("apply", "--device", "jetson", "--freq", "522.75", "--hold", env=environ)
    try:
        assert wait_for(lambda: fake.read("max_freq") == "522750000")
        assert edpilot("devices", "--device", "jetson", env=environ).returncode == 0
        assert edpilot("devices", env=environ).returncode == 0
        for flag in ("--dry-run", "--read-only"):
            args = ["tune", "--device", "jetson", flag, "--strategy", "grid", "--budget", "1", "--batches", "1"]
            args += ["--requests-per-round", "1", "--arrivals", "saturated", "--output-tokens", "2"]
            r = edpilot(*args, "--output", str(tmp_path / f"{flag}.jsonl"), env=environ, timeout=120)
            assert r.returncode == 0, r.stderr
            assert files(fake) == {**ORIGINAL, "min_freq": "522750000", "max_freq": "522750000"}
        second = edpilot("apply", "--device", "jetson", "--freq", "1300.5", env=environ)
        assert second.returncode == 2 and f"in use by another edpilot process (pid {proc.pid})" in second.stderr
        assert proc.poll() is None and fake.read("max_freq") == "522750000"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert files(fake) == ORIGINAL


def test_apply_that_never_reaches_the_level_puts_it_back(tmp_path):
    fake = build_tree(tmp_path / "root")  # no kernel thread: cur_freq never follows
    environ = {**os.environ, "EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(tmp_path / "state")}
    r = edpilot("apply", "--device", "jetson", "--freq", "522.75", env=environ)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "did not reach" in r.stderr and "put back" in r.stderr and "edpilot restore" in r.stderr
    assert files(fake) == ORIGINAL
    assert edpilot("restore", env=environ).stdout.strip() == "nothing to restore"


def test_apply_whose_second_write_is_refused_puts_the_first_back(env):
    fake, environ = env
    max_file = fake.devfreq / "max_freq"
    real_max = max_file.with_name("real_max")
    os.replace(max_file, real_max)
    os.symlink(real_max, max_file)  # reads fine, writes refused
    r = edpilot("apply", "--device", "jetson", "--freq", "216.75", env=environ)
    assert r.returncode == 2 and "symbolic link" in r.stderr and "put back" in r.stderr
    assert fake.read("min_freq") == ORIGINAL["min_freq"]


def test_apply_from_a_run_log(env, tmp_path):
    fake, environ = env
    log = tmp_path / "run.jsonl"
    r = edpilot("tune", "--strategy", "grid", "--budget", "2", "--output", str(log), env=environ, timeout=120)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    summary = next(rec for rec in records if rec["type"] == "summary")
    summary["best"] = {"freq_mhz": 828.75, "batch_size": 20}  # a level of the fake JetPack 5 tree
    log.write_text("".join(json.dumps(rec) + "\n" for rec in records))
    r = edpilot("apply", "--device", "jetson", "--from", str(log), env=environ)
    assert r.returncode == 0, r.stderr
    assert fake.read("max_freq") == fake.read("min_freq") == "828750000"
    assert "batch size to 20" in r.stdout and "edpilot restore" in r.stdout
    assert edpilot("restore", env=environ).returncode == 0 and files(fake) == ORIGINAL
    log.write_text("".join(json.dumps(rec) + "\n" for rec in records if rec["type"] != "summary"))
    r = edpilot("apply", "--device", "jetson", "--from", str(log), env=environ)
    assert r.returncode == 2 and "no summary record" in r.stderr and files(fake) == ORIGINAL


@pytest.mark.parametrize(
    "args,words",
    [
        (["--freq", "nan"], "finite number"),
        (["--freq", "-5"], "finite number"),
        (["--freq", "inf"], "finite number"),
        ([], "either --freq"),
        (["--freq", "522.75", "--from", "x.jsonl"], "either --freq"),
    ],
)
def test_apply_bad_values_are_one_line(env, args, words):
    fake, environ = env
    r = edpilot("apply", "--device", "jetson", *args, env=environ)
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert files(fake) == ORIGINAL


@pytest.mark.parametrize("spec", ["nvml:abc", "jetson:1", "cpu:2", "amdgpu", "sim:nope"])
def test_devices_bad_spec_is_one_line(env, spec):
    _, environ = env
    r = edpilot("devices", "--device", spec, env=environ)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unknown_device_lists_what_is_registered(env):
    _, environ = env
    r = edpilot("apply", "--device", "amdgpu", "--freq", "1", env=environ)
    assert r.returncode == 2 and "choose one of: jetson, nvml[:INDEX], cpu" in r.stderr


def test_restore_reports_each_file_and_goes_on(env, tmp_path):
    fake, environ = env
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "aaa.json").write_text('{"key": "x", "backe')
    os.utime(state / "aaa.json", (1, 1))  # the oldest: read first
    assert edpilot("apply", "--device", "jetson", "--freq", "930.75", env=environ).returncode == 0
    r = edpilot("restore", env=environ)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "restored jetson:" in r.stdout and "corrupt" in r.stderr and "--discard" in r.stderr
    assert files(fake) == ORIGINAL
    r = edpilot("restore", "--discard", "--json", env=environ)
    assert r.returncode == 0 and [o["status"] for o in json.loads(r.stdout)] == ["discarded"]
    assert sorted(p.suffix for p in state.iterdir()) == [".lock"]


def test_tune_refuses_to_pin_over_a_corrupt_state_file(env, tmp_path):
    from edpilot.hardware.state import StateStore

    fake, environ = env
    store = StateStore(tmp_path / "state")
    store.ensure_directory()
    store.path(f"jetson:{fake.devfreq.resolve()}").write_text("{")
    args = ["tune", "--device", "jetson", "--strategy", "grid", "--budget", "1", "--batches", "1"]
    r = edpilot(*args, "--freqs", "216.75,420.75", "--requests-per-round", "1", env=environ, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "corrupt" in r.stderr
    assert files(fake) == ORIGINAL


@pytest.mark.parametrize(
    "bad",
    ["[" * 3000 + "]" * 3000, '{"key": "x", "backend": "jetson", "n": ' + "9" * 5001 + "}", '{"key": ' * 3000],
)
def test_a_pathological_state_file_is_one_line_and_the_good_one_is_restored(env, tmp_path, bad):
    fake, environ = env
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "aaa.json").write_text(bad)
    os.utime(state / "aaa.json", (1, 1))  # the oldest: read first
    assert edpilot("apply", "--device", "jetson", "--freq", "930.75", env=environ).returncode == 0
    assert files(fake) != ORIGINAL
    r = edpilot("restore", env=environ)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "RecursionError" not in r.stderr
    assert "restored jetson:" in r.stdout
    assert len(r.stderr.strip().splitlines()) == 1 and "aaa.json is corrupt" in r.stderr
    assert files(fake) == ORIGINAL


def test_apply_refuses_a_simulated_device_instead_of_claiming_a_pin(env):
    _, environ = env
    r = edpilot("apply", "--device", "sim:orin-agx-64gb", "--freq", "1300.5", env=environ)
    assert r.returncode == 2 and "pinned" not in r.stdout
    assert len(r.stderr.strip().splitlines()) == 1 and "is simulated" in r.stderr and "no clock to pin" in r.stderr


def test_apply_from_a_run_log_pins_every_knob_of_the_choice(env, tmp_path):
    fake, environ = env
    log = tmp_path / "run.jsonl"
    r = edpilot("tune", "--strategy", "grid", "--budget", "2", "--output", str(log), env=environ, timeout=120)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    summary = next(rec for rec in records if rec["type"] == "summary")
    summary["best"] = {"freq_mhz": 828.75, "emc_mhz": 665.6, "batch_size": 20}
    log.write_text("".join(json.dumps(rec) + "\n" for rec in records))
    refused = edpilot("apply", "--device", "jetson", "--from", str(log), "--emc", "3199", env=environ)
    assert refused.returncode == 2 and "drop --emc" in refused.stderr and files(fake) == ORIGINAL
    r = edpilot("apply", "--device", "jetson", "--from", str(log), env=environ)
    assert r.returncode == 0, r.stderr
    assert fake.read("max_freq") == fake.read("min_freq") == "828750000"
    assert (fake.read_emc("rate"), fake.read_emc("mrq_rate_locked")) == ("665600000", "1")
    assert "828.75 MHz, memory 665.6 MHz" in r.stdout and "batch size to 20" in r.stdout
    assert edpilot("restore", env=environ).returncode == 0 and files(fake) == ORIGINAL
    assert fake.read_emc("mrq_rate_locked") == "0"
