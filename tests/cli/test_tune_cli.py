"""`edpilot tune` from the command line: defaults, outputs and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edpilot.cli import app

runner = CliRunner()


def test_default_tune_runs_the_paper_setting(tmp_path):
    log = tmp_path / "run.jsonl"
    r = runner.invoke(app, ["tune", "--output", str(log), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert (summary["baseline"]["freq_mhz"], summary["baseline"]["batch_size"]) == (930.75, 28)
    assert summary["objective"] == "edp" and summary["cost_best"] == summary["edp_best"]
    assert summary["rounds"] == 30
    assert summary["edp_best"] < summary["edp_baseline"]
    header = json.loads(log.read_text().splitlines()[0])
    assert header["device"]["board"] == "orin-agx-32gb" and header["model"] == "llama-3.2-1b"
    assert header["strategy"] == "edpilot" and header["arrival_rate_per_s"] == 1.0 and header["output_tokens"] == 70
    assert len(header["freqs_mhz"]) == 7 and header["batch_sizes"] == [4, 8, 12, 16, 20, 24, 28]


def test_table_output():
    r = runner.invoke(app, ["tune", "--budget", "3", "--strategy", "grid"])
    assert r.exit_code == 0, r.output
    assert "edp gain" in r.stdout and "energy/request" in r.stdout and "cost (edp)" in r.stdout


def test_other_objectives_are_reported_as_themselves_with_edp_beside():
    r = runner.invoke(app, ["tune", "--budget", "3", "--strategy", "grid", "--objective", "energy"])
    assert r.exit_code == 0, r.output
    assert "objective: energy" in r.stdout and "energy gain" in r.stdout and "EDP gain" in r.stdout
    r = runner.invoke(app, ["tune", "--budget", "3", "--strategy", "grid", "--objective", "latency", "--json"])
    summary = json.loads(r.stdout)
    assert summary["objective"] == "latency"
    assert summary["cost_best"] == pytest.approx(summary["best"]["mean_latency_s"])


def test_paper_preset_selects_the_papers_setting(tmp_path):
    log = tmp_path / "run.jsonl"
    r = runner.invoke(app, ["tune", "--paper", "--budget", "3", "--output", str(log), "--json"])
    assert r.exit_code == 0, r.output
    header = json.loads(log.read_text().splitlines()[0])
    assert header["objective"] == "weighted:0.5" and header["energy_scope"] == "active"
    assert json.loads(r.stdout)["cost_baseline"] == pytest.approx(1.0)


def test_same_seed_same_result():
    args = ["tune", "--budget", "10", "--json", "--seed", "7"]
    assert runner.invoke(app, args).stdout == runner.invoke(app, args).stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--device", "tpu"], "unknown device"),
        (["--device", "sim:orin-nano"], "unknown simulated board"),
        (["--model", "gpt-5"], "unknown model"),
        (["--strategy", "magic"], "unknown strategy"),
        (["--objective", "joy"], "unknown objective"),
        (["--arrival-rate", "0"], "--arrival-rate must be a finite number between 0.0001 and 100000"),
        (["--arrival-rate", "-1"], "--arrival-rate must be a finite number between"),
        (["--arrival-rate", "inf"], "--arrival-rate must be a finite number between"),
        (["--arrival-rate", "1e308"], "--arrival-rate must be a finite number between 0.0001 and 100000, got 1e+308"),
        (["--max-wait", "-1"], "--max-wait-s must be a finite number"),
        (["--freqs", "nan"], "--freqs must hold finite numbers"),
        (["--seed", "-1"], "--seed must be a whole number between 0 and 4294967295"),
        (["--output-tokens", "1000000000"], "--output-tokens must be a whole number between 1 and 8192"),
        (["--slo-p95", "0"], "--slo-p95 must be a finite number > 0"),
        (["--paper", "--objective", "edp"], "--paper sets --objective weighted:0.5"),
        (["--arrivals", "bursty"], "unknown arrival process"),
        (["--budget", "0"], "--budget must be a whole number between 1"),
        (["--freqs", "828.75"], "not a level of this device"),
        (["--baseline", "930.75,30"], "batch size 30 is not in the grid"),
        (["--baseline", "726.75,28"], "not a frequency of the grid"),
        (["--batches", "4,x"], "--batches must be"),
        (["--energy-scope", "some"], "unknown energy scope"),
        (["--profile", "/nonexistent.csv"], "does not exist"),
        (["--batches", "1000000000"], "--batches must be a whole number between 1 and 1024, got 1e+09"),
        (["--batches", "4,1e300"], "--batches must be a whole number between 1 and 1024"),
        (["--batches", "4,2.5"], "--batches must be a whole number"),
        (["--budget", "1000000000"], "--budget must be a whole number between 1 and 100000"),
        (["--requests-per-round", "100001"], "--requests-per-round must be a whole number between 1 and 100000"),
        (["--prompt-tokens", "1" + "0" * 30], "got a number of more than 20 digits"),
        (["--max-wait", "1e308"], "--max-wait-s must be a finite number between 0 and 1e+06"),
        (["--power-cap", "1e308"], "--power-cap must be a finite number > 0 and at most 1e+06"),
        (["--threads", "1000000000"], "--threads must be a whole number between 1 and 4096"),
        (["--objective", ""], "unknown objective ''"),
        (["--objective", "weighted:"], "weighted: needs its ALPHA"),
        (["--objective", "edp:"], "unknown objective 'edp:'"),
        (["--energy-scope", ""], "unknown energy scope ''"),
        (["--baseline", ""], "--baseline is empty"),
        (["--baseline", "930.75,1e300"], "--baseline must be a whole number between 1 and 1024, got 1e+300"),
        (["--freqs", ""], "--freqs is empty"),
        (["--batches", ""], "--batches is empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = runner.invoke(app, ["tune", *args])
    assert r.exit_code == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output


def test_malformed_profile_from_a_real_process(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("freq_mhz,batch_size,latency_s,energy_j\n500,1,1,-1\n")
    p = subprocess.run(
        [sys.executable, "-m", "edpilot", "tune", "--device", "sim", "--profile", str(bad)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2
    assert p.stderr.startswith("edpilot: error:") and "bad.csv:2" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_profile_replay_uses_the_files_grid(tmp_path):
    prof = tmp_path / "p.csv"
    rows = ["# idle_power_w: 5", "freq_mhz,batch_size,latency_s,energy_j"]
    rows += [f"{f},{b},{0.5 + b * 0.1 * 1000 / f},{b * f / 100}" for f in (400, 800) for b in (1, 2, 4)]
    prof.write_text("\n".join(rows) + "\n")
    log = tmp_path / "run.jsonl"
    r = runner.invoke(
        app, ["tune", "--profile", str(prof), "--strategy", "grid", "--budget", "6", "--output", str(log)]
    )
    assert r.exit_code == 0, r.output
    header = json.loads(log.read_text().splitlines()[0])
    assert header["freqs_mhz"] == [400.0, 800.0] and header["batch_sizes"] == [1, 2, 4]
    r = runner.invoke(app, ["tune", "--profile", str(prof), "--batches", "1,3", "--budget", "2"])
    assert r.exit_code == 2 and "no samples" in r.stderr


def test_bench_reports_times():
    r = runner.invoke(app, ["bench", "--rounds", "10", "--repeats", "1", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["rounds"] == 10 and data["grid_configs"] == 49
    assert 0 < data["decision_ms_mean"] <= data["decision_ms_max"]
    assert runner.invoke(app, ["bench", "--strategy", "nope"]).exit_code == 2


def test_bench_times_the_grid_and_traffic_it_is_given():
    args = ["bench", "--rounds", "5", "--repeats", "1", "--json", "--device", "sim:orin-agx-64gb"]
    r = runner.invoke(app, [*args, "--arrivals", "poisson", "--freqs", "all"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["grid_configs"], data["arrivals"], data["device"]) == (13 * 7, "poisson", "sim:orin-agx-64gb")
    assert 0 < data["decision_cpu_ms_median"] <= data["decision_cpu_ms_p99"]
    for bad, says in ((["--arrivals", "trace"], "uniform or poisson"), (["--device", "nvml"], "simulator only")):
        r = runner.invoke(app, [*args, *bad])
        assert r.exit_code == 2 and says in r.stderr


def test_error_text_in_brackets_survives(monkeypatch):
    import edpilot.hardware.nvml as nvml

    def missing():
        raise nvml.DeviceError("the nvml device needs nvidia-ml-py: pip install 'edpilot[nvml]'")

    monkeypatch.setattr(nvml, "load_nvml", missing)
    r = runner.invoke(app, ["tune", "--device", "nvml"])
    assert r.exit_code == 2 and "pip install 'edpilot[nvml]'" in r.stderr


def test_sim_is_a_registered_device_and_engine_like_any_other():
    from edpilot.engine import engine_kinds
    from edpilot.hardware import device_kinds

    assert "sim[:BOARD]" in device_kinds() and "sim" in engine_kinds()
    r = runner.invoke(app, ["tune", "--device", "tpu"])
    assert r.exit_code == 2 and "sim[:BOARD]" in r.stderr
    r = runner.invoke(app, ["devices", "--device", "sim:orin-agx-64gb", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["name"] == "sim:orin-agx-64gb"


def test_ctrl_c_during_start_up_is_never_a_traceback():
    """Ctrl-C during start-up: exit 130, or (before Python has installed its own handler) a plain
    death by SIGINT with nothing printed; never a traceback."""
    import os
    import signal
    import time

    script = os.path.join(os.path.dirname(sys.executable), "edpilot")
    for delay_s in (0.3, 0.45, 0.6, 0.8, 1.0):
        p = subprocess.Popen([script, "tune", "--budget", "2"], stderr=subprocess.PIPE, text=True)
        time.sleep(delay_s)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert p.returncode in (0, 130, -signal.SIGINT), (p.returncode, err)


@pytest.mark.parametrize(
    "args,message",
    [
        (["profile", "--output", "p.csv", "--repeats", "1000000000"], "--repeats must be a whole number between 1"),
        (["profile", "--output", "p.csv", "--batches", "1000000000"], "--batches must be a whole number between 1"),
        (["profile", "--output", "p.csv", "--output-tokens", "0"], "--output-tokens must be a whole number"),
        (["bench", "--rounds", "1000000000"], "--rounds must be a whole number between 1 and 100000"),
        (["bench", "--sweep", "--workers", "100000"], "--workers must be a whole number between 1 and 256"),
        (["bench", "--sweep", "--seeds", "0"], "--seeds must be a whole number between 1"),
    ],
)
def test_profile_and_bench_counts_are_bounded(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.csv").exists()
