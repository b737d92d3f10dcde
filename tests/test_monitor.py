"""`edpilot.EnergyMonitor`: named windows on the simulator, a fake Jetson tree and a stand-in for NVML."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import edpilot
from edpilot.clock import WallClock
from edpilot.hardware.jetson import JetsonDevice
from edpilot.hardware.nvml import NvmlDevice
from edpilot.hardware.state import StateStore
from edpilot.workload import Request
from tests.hardware.fake_jetson import build_tree, sine_ma
from tests.hardware.test_nvml import FakeNvml


def batch(n: int) -> list[Request]:
    return [Request(i, 0.0, "hello there", 4, 8) for i in range(n)]


def test_sim_window_is_idle_plus_batch_energy_exactly(linear_platform):
    device, engine, clock, model = linear_platform(base_s=0.5, per_request_s=0.1, active_w=20.0, idle_w=5.0)
    monitor = edpilot.EnergyMonitor(device)
    with monitor.window("serve") as w:
        clock.sleep(2.0)  # idle
        engine.generate(batch(4))  # 0.9 s at 20 W
    assert w.duration_s == pytest.approx(2.9)
    assert w.energy_j == pytest.approx(2.0 * 5.0 + 0.9 * 20.0)
    assert w.power_w == pytest.approx((10.0 + 18.0) / 2.9)
    assert w.rail_energy_j == {}
    assert "per-rail" in w.missing["rail_energy_j"]
    assert w.meter_updates is None and "update" in w.missing["meter_updates"]
    assert "energy_j" not in w.missing


def test_named_windows_overlap_and_each_counts_its_own_stretch(linear_platform):
    device, engine, clock, _ = linear_platform(idle_w=5.0)
    monitor = edpilot.EnergyMonitor(device)
    monitor.begin_window("outer")
    clock.sleep(1.0)
    monitor.begin_window("inner")
    clock.sleep(3.0)
    inner = monitor.end_window("inner")
    clock.sleep(1.0)
    outer = monitor.end_window("outer")
    assert (inner.name, inner.duration_s, inner.energy_j) == ("inner", pytest.approx(3.0), pytest.approx(15.0))
    assert (outer.duration_s, outer.energy_j) == (pytest.approx(5.0), pytest.approx(25.0))


def test_window_names_are_checked(linear_platform):
    device, *_ = linear_platform()
    monitor = edpilot.EnergyMonitor(device)
    monitor.begin_window("a")
    with pytest.raises(edpilot.ConfigError, match="already open"):
        monitor.begin_window("a")
    with pytest.raises(edpilot.ConfigError, match=r"no window named 'b' is open \(open: 'a'\)"):
        monitor.end_window("b")
    with monitor.window("c") as w, pytest.raises(RuntimeError, match="still open"):
        _ = w.energy_j


def test_a_block_that_raises_drops_its_window(linear_platform):
    device, *_ = linear_platform()
    monitor = edpilot.EnergyMonitor(device)
    with pytest.raises(ValueError), monitor.window("x"):
        raise ValueError("boom")
    monitor.begin_window("x")  # the name is free again


def test_sync_runs_before_each_reading(linear_platform):
    device, *_ = linear_platform()
    calls: list[str] = []
    monitor = edpilot.EnergyMonitor(device, sync=lambda: calls.append("sync"))
    with monitor.window():
        calls.append("work")
    assert calls == ["sync", "work", "sync"]


def test_a_device_without_a_meter_is_missing_never_zero():
    with edpilot.open_device("cpu") as device:
        with edpilot.EnergyMonitor(device).window("w") as w:
            WallClock().sleep(0.01)
    assert w.energy_j is None and w.power_w is None
    assert w.missing["energy_j"] == "cpu has no energy meter"


@pytest.fixture
def jetson(tmp_path):
    tree = build_tree(tmp_path / "root")
    device = JetsonDevice(root=tree.root, state_store=StateStore(tmp_path / "state"))
    yield tree, device
    device.close()


def test_jetson_gives_energy_per_rail(jetson):
    tree, device = jetson
    with edpilot.EnergyMonitor(device) as monitor:
        assert monitor.rails == ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO")
        with monitor.window("steady") as w:
            WallClock().sleep(0.6)  # longer than the INA3221's 430 ms averaging
    rail_w = {label: energy_j / w.duration_s for label, energy_j in w.rail_energy_j.items()}
    # The fake's rails: 5 V at 1.6, 0.6, 0.9 and 0.3 A; the AGX Orin's total is the sum of every rail.
    assert rail_w == pytest.approx(
        {"VDD_GPU_SOC": 8.0, "VDD_CPU_CV": 3.0, "VIN_SYS_5V0": 4.5, "VDDQ_VDD2_1V8AO": 1.5}, rel=0.02
    )
    assert w.energy_j / w.duration_s == pytest.approx(17.0, rel=0.02)
    assert w.meter_updates == pytest.approx(w.duration_s * 1000 / 430)
    assert w.missing == {}


def test_a_rail_that_fails_mid_window_is_missing_with_its_reason(jetson):
    tree, device = jetson
    with edpilot.EnergyMonitor(device) as monitor:
        monitor.begin_window("w")
        WallClock().sleep(0.3)
        os.remove(tree.hwmons[1] / "curr2_input")  # VDDQ_VDD2_1V8AO's current file disappears
        WallClock().sleep(0.3)
        m = monitor.end_window("w")
    assert m.rail_energy_j["VDDQ_VDD2_1V8AO"] is None
    assert "VDDQ_VDD2_1V8AO" in m.missing["rail_energy_j[VDDQ_VDD2_1V8AO]"]
    assert "curr2_input" in m.missing["rail_energy_j[VDDQ_VDD2_1V8AO]"]
    assert m.rail_energy_j["VDD_GPU_SOC"] / m.duration_s == pytest.approx(8.0, rel=0.02)
    # The device's own total counts that rail too, so it is missing as well, and says why.
    assert m.energy_j is None and "could not be read" in m.missing["energy_j"]


def test_nvml_counter_window(tmp_path):
    fake = FakeNvml()
    device = NvmlDevice(0, nvml=fake, read_only=True, state_store=StateStore(tmp_path / "state"))
    try:
        monitor = edpilot.EnergyMonitor(device)
        monitor.begin_window("decode")
        WallClock().sleep(0.15)
        fake.energy_mj += 2_500  # the counter advanced 2.5 J
        m = monitor.end_window("decode")
        assert m.energy_j == pytest.approx(2.5)
        assert m.meter_updates == pytest.approx(m.duration_s * 1000 / 100) and m.meter_updates >= 1.5
        assert m.rail_energy_j == {} and "rail_energy_j" in m.missing
        monitor.begin_window("stalled")
        WallClock().sleep(0.15)
        m = monitor.end_window("stalled")  # the counter did not advance: not a measurement of 0 J
        assert m.energy_j is None and "did not advance over" in m.missing["energy_j"]
        monitor.begin_window("blink")
        fake.energy_mj += 900
        m = monitor.end_window("blink")  # far shorter than one 100 ms update: the 0.9 J is not this window's
        assert m.energy_j is None and "shorter than one update" in m.missing["energy_j"]
    finally:
        device.close()


def test_the_simulated_board_through_open_device():
    with edpilot.open_device("sim:orin-agx-32gb") as device, edpilot.open_engine("sim", device=device) as engine:
        monitor = edpilot.EnergyMonitor(device)
        requests = edpilot.Workload(output_tokens=32).requests(4, np.random.default_rng(0))
        with monitor.window("batch") as w:
            engine.generate(requests)
        assert w.duration_s > 0 and w.energy_j is not None
        assert 5.0 < w.power_w < 60.0  # an AGX Orin serving a batch: between idle and the board's peak


def test_a_rails_energy_follows_a_changing_load_to_the_analytic_integral(tmp_path):
    tree = build_tree(tmp_path / "root")
    value_ma, integral_mas = sine_ma(2000.0, 1800.0, period_s=2.5)  # the GPU rail swings 1-19 W
    tree.waveform = value_ma
    tree.start(period_s=0.001)
    device = JetsonDevice(root=tree.root, state_store=StateStore(tmp_path / "state"))
    try:
        with edpilot.EnergyMonitor(device) as monitor, monitor.window("load") as w:
            t_a = time.monotonic()
            WallClock().sleep(1.2)  # part of a swing: its mean power alone would be ~37 % off
            t_b = time.monotonic()
    finally:
        device.close()
        tree.stop()
    expected_j = 5.0 * integral_mas(t_a - tree.t0, t_b - tree.t0) / 1000  # 5 V × ∫ mA dt
    assert w.rail_energy_j["VDD_GPU_SOC"] == pytest.approx(expected_j, rel=0.02)
    assert w.rail_energy_j["VDD_CPU_CV"] == pytest.approx(3.0 * w.duration_s, rel=0.01)  # a steady rail
