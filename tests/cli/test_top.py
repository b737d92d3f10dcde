"""`edpilot top`: the live view, the CSV log of a headless board, a server's state, and that it changes nothing."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from edpilot.cli import app
from edpilot.hardware.jetson import JetsonDevice
from edpilot.hardware.state import StateStore
from edpilot.watch import DeviceReader
from tests.hardware.fake_jetson import build_tree, put

runner = CliRunner()
RAILS = ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO")


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every link's target under `root`."""
    return {
        str(p.relative_to(root)): os.readlink(p) if p.is_symlink() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_top_log_reads_a_jetson_and_changes_nothing(tmp_path):
    tree = build_tree(tmp_path / "root")  # its memory clock (BPMP debugfs) reads 2133 MHz
    before = snapshot(tree.root)
    log = tmp_path / "top.csv"
    args = ["top", "--device", "jetson", "--sysfs-root", str(tree.root), "--log", str(log)]
    state = tmp_path / "state"
    r = runner.invoke(app, [*args, "--count", "3", "--interval", "0.1"], env={"EDPILOT_STATE_DIR": str(state)})
    assert r.exit_code == 0, r.output
    assert snapshot(tree.root) == before
    assert not state.exists()  # no saved state, no lock: there is nothing to put back
    header = log.read_text().splitlines()[0].split(",")
    columns = ["time", "gpu_mhz", "emc_mhz", "governor", "gpu_load_pct", "power_w", "energy_j"]
    assert header == [*columns, *(f"{x}_w" for x in RAILS)]
    rows = read_csv(log)
    assert len(rows) == 3
    for row in rows:
        assert (row["gpu_mhz"], row["emc_mhz"], row["governor"]) == ("624.75", "2133", "nvhost_podgov")
        assert row["gpu_load_pct"] == "41.2"  # the load file holds per mille: 412
        assert {x: float(row[f"{x}_w"]) for x in RAILS} == {
            "VDD_GPU_SOC": 8.0,
            "VDD_CPU_CV": 3.0,
            "VIN_SYS_5V0": 4.5,
            "VDDQ_VDD2_1V8AO": 1.5,
        }
    assert rows[0]["power_w"] == ""  # a mean needs two readings: the first has none, not 0
    assert [float(row["power_w"]) for row in rows[1:]] == pytest.approx([17.0, 17.0], rel=0.02)
    energies = [float(row["energy_j"]) for row in rows]
    assert energies[0] < energies[1] < energies[2]
    assert "stopped after 3 readings" in r.stderr


def test_a_reading_that_fails_is_missing_in_that_reading_only(tmp_path):
    tree = build_tree(tmp_path / "root", debugfs="unmounted")
    device = JetsonDevice(root=tree.root, state_store=StateStore(tmp_path / "state"))
    try:
        reader = DeviceReader(device)
        assert reader.read().knobs == {"gpu_mhz": 624.75, "emc_mhz": 2133.0}
        (tree.root / "sys/kernel/debug/bpmp/debug/clk/emc/rate").unlink()
        (tree.devfreq / "governor").rename(tree.devfreq / "governor.away")
        os.remove(tree.hwmons[0] / "curr2_input")  # VDD_CPU_CV
        put(tree.devfreq.parent.parent / "load", "busy")  # not a number
        reading = reader.read()
        assert reading.governor is None and reading.rails_w["VDD_CPU_CV"] is None and reading.gpu_load_pct is None
        assert reading.knobs == {"gpu_mhz": 624.75, "emc_mhz": None}
        assert reading.rails_w["VDD_GPU_SOC"] == pytest.approx(8.0)
        (tree.devfreq / "governor.away").rename(tree.devfreq / "governor")
        put(tree.root / "sys/kernel/debug/bpmp/debug/clk/emc/rate", 3199000000)
        put(tree.hwmons[0] / "curr2_input", 700)
        reading = reader.read()
        assert reading.governor == "nvhost_podgov" and reading.rails_w["VDD_CPU_CV"] == pytest.approx(3.5)
        assert reading.knobs["emc_mhz"] == 3199.0
    finally:
        device.close()


def test_live_view_on_the_simulator():
    r = runner.invoke(app, ["top", "--device", "sim", "--count", "2", "--interval", "0.05"])
    assert r.exit_code == 0, r.output
    assert "GPU clock" in r.stdout and "930.75 MHz" in r.stdout and "energy counter" in r.stdout
    assert "stopped after 2 readings" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_logging_with_one_line_and_complete_rows(tmp_path, sig):
    log = tmp_path / "top.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edpilot", "top", "--device", "sim", "--log", str(log), "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while (not log.exists() or len(log.read_text().splitlines()) < 4) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edpilot top: stopped after ") and str(log) in lines[0]
    rows = read_csv(log)
    assert len(rows) >= 3 and f"after {len(rows)} readings" in lines[0]
    assert list(rows[0])[:2] == ["time", "gpu_mhz"]
    assert all(None not in row and None not in row.values() for row in rows)  # every row whole: no cell short or over
    assert out == ""


@pytest.mark.parametrize(
    "args,message",
    [
        (["--interval", "0"], "--interval must be"),
        (["--count", "0"], "--count must be"),
        (["--duration", "nan"], "--duration must be"),
        (["--device", "none"], "give its --url"),
        (["--device", "tpu"], "unknown device"),
        (["--url", "127.0.0.1:8000"], "--url needs an http:// or https:// address"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = runner.invoke(app, ["top", "--device", "sim", *args])
    assert r.exit_code == 2
    assert message in r.stderr and "Traceback" not in r.output


def test_an_existing_log_is_kept_without_overwrite(tmp_path):
    log = tmp_path / "top.csv"
    log.write_text("keep me\n")
    r = runner.invoke(app, ["top", "--device", "sim", "--log", str(log), "--count", "1"])
    assert r.exit_code == 2 and "exists" in r.stderr and log.read_text() == "keep me\n"
    r = runner.invoke(app, ["top", "--device", "sim", "--log", str(log), "--count", "1", "--overwrite"])
    assert r.exit_code == 0 and len(read_csv(log)) == 1


def test_top_reads_a_running_servers_round_config_queue_and_edp(tmp_path):
    from tests.server.conftest import start_server

    server = start_server(
        "--device", "sim", "--freq", "816", "--batch", "4", "--max-wait-s", "0.5", "--sim-speed", "50"
    )
    try:
        log = tmp_path / "top.csv"
        args = ["top", "--device", "none", "--url", server.url, "--log", str(log), "--count", "1"]
        assert runner.invoke(app, args).exit_code == 0
        (before,) = read_csv(log)
        assert (before["server_round"], before["server_freq_mhz"], before["server_batch_size"]) == ("0", "816", "4")
        assert before["server_edp_js"] == ""  # no round measured yet: the gauge's 0 is not an EDP

        def ask(i: int) -> int:
            body = {"model": "llama-3.2-1b", "prompt": f"p{i}", "max_tokens": 4}
            return httpx.post(f"{server.url}/v1/completions", json=body, timeout=60).status_code

        with cf.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(ask, range(32))) == {200}  # one window: 32 requests at batch 4
        assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
        (after,) = read_csv(log)
        assert float(after["server_round"]) >= 1 and float(after["server_edp_js"]) > 0
        assert after["server_queue"] == "0"
    finally:
        server.stop()


def test_an_unreachable_server_is_empty_cells_not_an_error(tmp_path):
    log = tmp_path / "top.csv"
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    r = runner.invoke(app, ["top", "--device", "none", "--url", url, "--log", str(log), "--count", "2"])
    assert r.exit_code == 0, r.output
    rows = read_csv(log)
    assert len(rows) == 2 and all(v == "" for row in rows for k, v in row.items() if k != "time")


def test_a_full_disk_is_one_line_and_exit_2():
    r = runner.invoke(app, ["top", "--device", "sim", "--log", "/dev/full", "--overwrite", "--count", "2"])
    assert r.exit_code == 2
    assert "cannot write --log /dev/full: No space left on device" in r.stderr and "Traceback" not in r.output
