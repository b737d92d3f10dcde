"""A measurement that could not be taken is missing and says so: never a held, dropped or negative value."""

from __future__ import annotations

import time

import pytest

from edpilot.errors import DeviceError
from edpilot.hardware.jetson import JetsonDevice
from edpilot.hardware.meter import SampledEnergyMeter
from edpilot.hardware.state import StateStore
from tests.hardware.fake_jetson import build_tree, put


def wait_until(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.005)
    return predicate()


def test_meter_never_holds_the_last_value(caplog):
    readings = iter([10.0, 10.0, 10.0])

    def power_w():
        value = next(readings, None)
        if value is None:
            raise DeviceError("rail gone")
        return value

    meter = SampledEnergyMeter(power_w, interval_s=3600)  # samples only when told
    meter.sample()
    meter.sample()
    assert meter.energy_j() > 0
    with caplog.at_level("WARNING"):
        meter.sample()
    assert meter.energy_j() is None and "energy is missing" in caplog.text and "rail gone" in caplog.text
    meter.close()


def test_a_rail_that_breaks_mid_run_makes_energy_missing(tmp_path, caplog):
    fake = build_tree(tmp_path / "root")
    dev = JetsonDevice(root=fake.root, state_store=StateStore(tmp_path / "s"), sample_interval_s=0.005)
    try:
        e0 = dev.energy_j()
        time.sleep(0.05)
        assert dev.energy_j() > e0
        rail = fake.hwmons[0] / "curr2_input"  # VDD_CPU_CV
        rail.unlink()
        with caplog.at_level("WARNING"):
            assert wait_until(lambda: dev.energy_j() is None)
        assert "VDD_CPU_CV" in caplog.text or "curr2_input" in caplog.text
        put(rail, 600)  # back again: what was missed stays missed
        time.sleep(0.05)
        assert dev.energy_j() is None
    finally:
        dev.close()


def test_negative_current_mid_run_is_missing_energy(tmp_path):
    fake = build_tree(tmp_path / "root")
    dev = JetsonDevice(root=fake.root, state_store=StateStore(tmp_path / "s"), sample_interval_s=0.005)
    try:
        put(fake.gpu_rail_current, -1600)
        assert wait_until(lambda: dev.energy_j() is None)
    finally:
        dev.close()


def test_an_unreadable_rail_at_start_is_an_error_naming_it(tmp_path):
    fake = build_tree(tmp_path / "root")
    curr = fake.hwmons[1] / "curr2_input"  # VDDQ_VDD2_1V8AO
    curr.unlink()
    curr.mkdir()  # exists but cannot be read (root ignores chmod, so a directory stands in)
    with pytest.raises(DeviceError, match=r"power rail VDDQ_VDD2_1V8AO \(1-0041\) cannot be read.*--rails"):
        JetsonDevice(root=fake.root, state_store=StateStore(tmp_path / "s"))
    dev = JetsonDevice(root=fake.root, rails=["VDD_GPU_SOC"], state_store=StateStore(tmp_path / "s"))
    try:
        assert dev.describe()["rails_w"]["VDDQ_VDD2_1V8AO"] is None  # shown as missing, not dropped
    finally:
        dev.close()


def test_negative_current_at_start_is_refused(tmp_path):
    fake = build_tree(tmp_path / "root")
    put(fake.hwmons[0] / "curr3_input", -20)
    with pytest.raises(DeviceError, match=r"VIN_SYS_5V0 .*negative reading is invalid"):
        JetsonDevice(root=fake.root, state_store=StateStore(tmp_path / "s"))
