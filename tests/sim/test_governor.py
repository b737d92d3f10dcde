"""The stock-governor baseline: the simulated governor's idle energy, and the round tune records and quotes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edpilot.backends import Backends
from edpilot.clock import VirtualClock
from edpilot.records import Summary
from edpilot.runlog import RunLog, read_run_log
from edpilot.sim import BatchCost, SimDevice, SimEngine
from edpilot.sim.governor import governed_idle_j
from edpilot.workload import Workload
from tests.conftest import LinearModel, run_tune


class TwoLevelIdle(LinearModel):
    """The linear model with idle power 2 W at the low level and 5 W at the high one."""

    def idle_power_w(self, freq_mhz: float) -> float:
        return 5.0 if freq_mhz >= 1000.0 else 2.0


def idle_w(freq_mhz: float) -> float:
    return TwoLevelIdle().idle_power_w(freq_mhz)


def test_governed_idle_is_high_for_the_hold_then_low():
    levels = (500.0, 1000.0)
    assert governed_idle_j(idle_w, levels, start_s=10.0, end_s=11.0, busy_until_s=10.0) == pytest.approx(2.3)
    hold_part_j = governed_idle_j(idle_w, levels, start_s=10.05, end_s=11.0, busy_until_s=10.0)
    assert hold_part_j == pytest.approx(0.05 * 5 + 0.9 * 2)
    assert governed_idle_j(idle_w, levels, start_s=10.0, end_s=10.04, busy_until_s=10.0) == pytest.approx(0.2)
    assert governed_idle_j(idle_w, levels, start_s=12.0, end_s=13.0, busy_until_s=10.0) == pytest.approx(2.0)
    assert governed_idle_j(idle_w, levels, start_s=12.0, end_s=12.0, busy_until_s=10.0) == 0.0


def test_sim_device_released_to_the_governor_idles_low_until_pinned_again():
    clock = VirtualClock()
    device = SimDevice(TwoLevelIdle(), clock, name="two-level")
    device.release_clocks()
    assert device.governed and device.current_freq_mhz() == 1000.0  # batches run at the top level
    clock.sleep(1.0)
    assert device.energy_j() == pytest.approx(0.1 * 5 + 0.9 * 2)
    device.run_batch(BatchCost(service_s=0.5, energy_j=10.0, ttft_s=None))
    clock.sleep(2.0)
    assert device.energy_j() == pytest.approx(2.3 + 10.0 + 0.1 * 5 + 1.9 * 2)
    device.set_freq_mhz(1000.0)
    assert not device.governed
    clock.sleep(1.0)
    assert device.energy_j() == pytest.approx(16.6 + 5.0)
    device.release_clocks()
    device.restore()  # back to the top level, pinned: idle at 5 W
    assert not device.governed
    clock.sleep(1.0)
    assert device.energy_j() == pytest.approx(21.6 + 5.0)


def two_level_backends() -> Backends:
    clock = VirtualClock()
    model = TwoLevelIdle()
    device = SimDevice(model, clock, name="two-level")
    return Backends(device, SimEngine(device, model, clock, np.random.default_rng(0)), None)


def test_tune_records_the_governor_round_and_quotes_both_baselines(tmp_path):
    path = tmp_path / "run.jsonl"
    with RunLog(path) as log:
        result = run_tune(two_level_backends(), budget=3, batches="1,4", run_log=log, governor=True)
    s = result.summary
    gov, base = s.governor, s.baseline
    assert gov["freq_mhz"] is None and gov["batch_size"] == base["batch_size"] == 4
    # same batches at the same clock: the same service; between batches the governor idles at 2 W, not 5 W
    assert gov["mean_service_s"] == pytest.approx(base["mean_service_s"])
    assert gov["mean_fill_wait_s"] == pytest.approx(1.5)  # uniform, 1 req/s, b = 4: (b - 1) / 2
    assert gov["energy_per_request_j"] < base["energy_per_request_j"]
    assert s.edp_gain_vs_governor_pct == pytest.approx(100 * (1 - s.best["edp"] / gov["edp"]))
    assert gov["cost"] == pytest.approx(gov["edp"])
    for att, other in ((s.attribution, base), (s.attribution_vs_governor, gov)):
        terms = [part["log_term"] for part in att["parts"].values()]
        assert sum(terms) == pytest.approx(np.log(att["edp_ratio"]))
        ratio = s.best["energy_per_request_j"] * s.best["mean_latency_s"]
        assert att["edp_ratio"] == pytest.approx(ratio / (other["energy_per_request_j"] * other["mean_latency_s"]))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["type"] for line in lines[:2]] == ["governor", "round"]
    assert lines[0]["role"] == "governor" and lines[0]["freq_mhz"] is None
    back = read_run_log(path)
    assert back.rounds[0].role == "baseline"  # the governor window is not a search round
    assert back.summary.governor == gov and back.summary.attribution == s.attribution
    assert Summary.from_dict(s.to_dict(), where="x").edp_gain_vs_governor_pct == s.edp_gain_vs_governor_pct


def test_no_governor_round_on_a_device_that_cannot_set_clocks():
    clock = VirtualClock()
    model = TwoLevelIdle()
    device = SimDevice(model, clock, name="ro", read_only=True)
    backends = Backends(device, SimEngine(device, model, clock, np.random.default_rng(0)), None)
    result = run_tune(backends, budget=2, batches="1,4", governor=True, workload=Workload())
    assert result.summary.governor is None and result.summary.edp_gain_vs_governor_pct is None
    assert result.summary.attribution is not None


def test_no_governor_round_on_a_board_with_one_level(tmp_path):
    clock = VirtualClock()
    model = TwoLevelIdle()
    model.freqs_mhz = (1000.0,)
    device = SimDevice(model, clock, name="one-level")
    backends = Backends(device, SimEngine(device, model, clock, np.random.default_rng(0)), None)
    assert run_tune(backends, budget=2, batches="1,4", governor=True).summary.governor is None


def test_tune_cli_quotes_both_baselines_and_the_gain_sources():
    from typer.testing import CliRunner

    from edpilot.cli import app

    runner = CliRunner()
    on = runner.invoke(app, ["tune", "--budget", "2", "--strategy", "grid", "--json"])
    assert on.exit_code == 0, on.output
    s = json.loads(on.stdout)
    assert s["governor"]["freq_mhz"] is None and s["governor"]["batch_size"] == s["baseline"]["batch_size"]
    assert s["edp_gain_vs_governor_pct"] == pytest.approx(100 * (1 - s["edp_best"] / s["edp_governor"]))
    fill = s["attribution"]["parts"]["fill_wait"]
    assert fill["factor"] < 1 and fill["share_pct"] > 50  # the baseline's wait for 28 requests at 1 req/s
    assert sum(p["share_pct"] for p in s["attribution"]["parts"].values()) == pytest.approx(100.0)
    off = runner.invoke(app, ["tune", "--budget", "2", "--strategy", "grid", "--json", "--no-governor-baseline"])
    assert off.exit_code == 0 and json.loads(off.stdout)["governor"] is None
    table = runner.invoke(app, ["tune", "--budget", "2", "--strategy", "grid"], env={"COLUMNS": "160"})
    assert "stock governor" in table.stdout and "where it comes from (vs baseline): EDP" in table.stdout
    assert "fill wait (s)" in table.stdout
