"""The memory clock as a searched axis: `--emcs` in the grid, every knob set per round, every knob in the run log."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edpilot.backends import build_space, grid, open_backends
from edpilot.cli import app
from edpilot.errors import ConfigError
from edpilot.runlog import read_run_log
from edpilot.runner import Runner
from edpilot.sim import SimDevice
from edpilot.space import Axis, Config
from edpilot.workload import Workload

ORIN_EMC_MHZ = (204.0, 665.6, 2133.0, 3199.0)


def edpilot(*args):
    return subprocess.run([sys.executable, "-m", "edpilot", *args], capture_output=True, text=True, timeout=300)


def test_no_emcs_leaves_the_grid_as_it_was():
    backends = open_backends(device="sim")
    space = build_space(backends)
    assert space.knob_names == ("gpu_mhz",) and len(space) == 49


def test_emcs_all_and_a_list_add_the_memory_clock_axis():
    backends = open_backends(device="sim")
    space = build_space(backends, emcs="all", freqs="306,930.75", batches="4,8")
    assert space.axes[1] == Axis("emc_mhz", ORIN_EMC_MHZ) and len(space) == 2 * 4 * 2
    assert space.baseline() == Config.of(8, gpu_mhz=930.75, emc_mhz=3199.0)
    listed = build_space(backends, emcs="3199,665.6", freqs="306", batches="4")
    assert [c.level("emc_mhz") for c in listed] == [665.6, 3199.0]


@pytest.mark.parametrize(
    ("device", "emcs", "message"),
    [
        ("sim", "1000", r"--emcs: 1000 MHz is not a level of this device \(nearest: 665.6\)"),
        ("sim", "x", "--emcs must be a comma-separated list of numbers"),
        ("cpu", "all", "--emcs cannot be searched: cpu has no memory clock knob"),
    ],
)
def test_emcs_the_device_cannot_search_is_one_clear_error(device, emcs, message):
    backends = open_backends(device=device)
    with pytest.raises(ConfigError, match=message):
        build_space(backends, emcs=emcs)


def test_a_read_only_board_says_why_its_memory_clock_cannot_be_searched():
    backends = open_backends(device="sim", read_only=True)
    with pytest.raises(ConfigError, match="--emcs cannot be searched: --read-only was given"):
        grid(backends.device, emcs="all")


class RecordingSim(SimDevice):
    """The simulator, noting each knob it is asked to turn (the order is what the test checks)."""

    turned: list[tuple[str, float]]

    def set_knob(self, name: str, level: float) -> None:
        self.turned.append((name, level))
        super().set_knob(name, level)


def test_the_runner_sets_every_knob_gpu_first_and_the_memory_clock_prices_the_round():
    backends = open_backends(device="sim")
    device = backends.device
    assert isinstance(device, SimDevice)
    device.__class__ = RecordingSim
    device.turned = []  # type: ignore[attr-defined]
    runner = Runner(backends.device, backends.engine, Workload(arrivals="saturated"), requests_per_round=8)
    low = runner.measure(Config.of(4, gpu_mhz=612.0, emc_mhz=204.0))
    assert device.turned == [("gpu_mhz", 612.0), ("emc_mhz", 204.0)]  # type: ignore[attr-defined]
    assert device.knob_level("emc_mhz") == 204.0 and device.knob_level("gpu_mhz") == 612.0
    high = runner.measure(Config.of(4, gpu_mhz=612.0, emc_mhz=3199.0))
    assert device.knob_level("emc_mhz") == 3199.0
    assert low.mean_batch_s > 1.5 * high.mean_batch_s  # decode is bandwidth-bound: 204 MHz starves it
    runner.measure(Config.of(4, gpu_mhz=408.0))  # a config without the memory clock leaves it where it is
    assert device.knob_level("emc_mhz") == 3199.0 and device.turned[-1] == ("gpu_mhz", 408.0)  # type: ignore[attr-defined]


def test_a_config_naming_a_knob_the_device_lacks_is_refused():
    backends = open_backends(device="cpu")
    runner = Runner(backends.device, backends.engine, Workload(arrivals="saturated"), requests_per_round=4)
    with pytest.raises(Exception, match="has no knob emc_mhz"):
        runner.measure(Config.of(1, emc_mhz=3199.0))


def test_tune_with_emcs_logs_every_knob_and_reads_it_back(tmp_path):
    log = tmp_path / "run.jsonl"
    r = edpilot(
        "tune", "--emcs", "665.6,3199", "--freqs", "612,930.75", "--batches", "4,8", "--strategy", "grid",
        "--budget", "8", "--output", str(log), "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    header, rounds = records[0], [rec for rec in records if rec["type"] == "round"]
    assert header["axes"] == {"emc_mhz": [665.6, 3199.0]} and header["freqs_mhz"] == [612.0, 930.75]
    assert header["baseline"] == {"freq_mhz": 930.75, "emc_mhz": 3199.0, "batch_size": 8}
    assert {(rec["freq_mhz"], rec["emc_mhz"], rec["batch_size"]) for rec in rounds} == {
        (f, e, b) for f in (612.0, 930.75) for e in (665.6, 3199.0) for b in (4, 8)
    }
    run = read_run_log(log)
    assert run.header is not None and run.header.grid_levels() == {
        "gpu_mhz": [612.0, 930.75],
        "emc_mhz": [665.6, 3199.0],
    }
    assert run.summary is not None and run.summary.best_config.level("emc_mhz") in (665.6, 3199.0)
    assert {rd.config for rd in run.rounds} == {
        Config.of(b, gpu_mhz=f, emc_mhz=e) for f in (612.0, 930.75) for e in (665.6, 3199.0) for b in (4, 8)
    }
    summary = json.loads(r.stdout)
    assert summary["best"]["emc_mhz"] == run.summary.best["emc_mhz"]


def test_tune_with_a_bad_emcs_is_one_line_and_writes_nothing(tmp_path):
    log = tmp_path / "run.jsonl"
    r = edpilot("tune", "--device", "cpu", "--emcs", "all", "--output", str(log))
    errors = [line for line in r.stderr.splitlines() if line.startswith("edpilot: error:")]
    assert r.returncode == 2 and errors == [
        "edpilot: error: --emcs cannot be searched: cpu has no memory clock knob (emc_mhz)"
    ]
    assert not log.exists() and "Traceback" not in r.stderr


def test_a_two_axis_log_is_written_as_before(tmp_path):
    log = tmp_path / "run.jsonl"
    r = edpilot("tune", "--budget", "3", "--output", str(log))
    assert r.returncode == 0, r.stderr
    run = read_run_log(log)
    assert (
        run.header is not None and run.header.axes == {} and "axes" not in json.loads(log.read_text().splitlines()[0])
    )
    assert all(rd.config.knobs == (("gpu_mhz", rd.config.freq_mhz),) for rd in run.rounds)


@pytest.mark.parametrize(
    ("args", "heads"),
    [
        ([], ["930.75 MHz, b=28"]),  # two axes: one line, as before
        (["--emcs", "665.6,3199"], ["EMC 3199"]),
        (["--phase-clocks"], ["→ 930.75"]),
    ],
)
def test_the_result_table_names_every_knob_of_the_baseline_column(args, heads):
    r = CliRunner().invoke(app, ["tune", "--budget", "2", "--no-governor-baseline", *args], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    head = r.output[: r.output.index("cost (edp)")]
    assert all(h in head for h in heads), head
