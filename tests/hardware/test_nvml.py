"""The NVML backend against a stand-in for the NVML library (no NVIDIA driver exists here).

The real library ran on an H100 (read-only): see benchmarks/nvml_check.py and the closing note.
"""

from __future__ import annotations

import time

import pytest

from edpilot.errors import DeviceError, PermissionDenied
from edpilot.hardware import restore_saved
from edpilot.hardware.nvml import NvmlDevice
from edpilot.hardware.state import StateStore


class FakeNvml:
    """The subset of pynvml edpilot calls, with NVML's units (MHz, mW, mJ)."""

    NVML_CLOCK_GRAPHICS = 0

    class NVMLError(Exception):
        pass

    class NVMLError_NoPermission(NVMLError):  # noqa: N801 - pynvml's name
        pass

    def __init__(self, *, has_counter=True, allow_set=True):
        self.calls = []
        self.has_counter, self.allow_set = has_counter, allow_set
        self.locked = None
        self.energy_mj = 5_000_000
        self.power_mw = 120_000

    def nvmlDeviceGetHandleByIndex(self, index):  # noqa: N802
        if index != 0:
            raise self.NVMLError("Invalid Argument")
        return "h0"

    def nvmlDeviceGetName(self, h):  # noqa: N802
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetSupportedMemoryClocks(self, h):  # noqa: N802
        return [2619, 1593]

    def nvmlDeviceGetSupportedGraphicsClocks(self, h, mem):  # noqa: N802
        return [1980, 1965, 1950, 345] if mem == 2619 else [1200]

    def nvmlDeviceGetClockInfo(self, h, kind):  # noqa: N802
        return self.locked or 1980

    def nvmlDeviceGetPowerUsage(self, h):  # noqa: N802
        return self.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h):  # noqa: N802
        if not self.has_counter:
            raise self.NVMLError("Not Supported")
        return self.energy_mj

    def nvmlDeviceSetGpuLockedClocks(self, h, lo, hi):  # noqa: N802
        if not self.allow_set:
            raise self.NVMLError_NoPermission("Insufficient Permissions")
        self.calls.append(("lock", lo, hi))
        self.locked = lo

    def nvmlDeviceResetGpuLockedClocks(self, h):  # noqa: N802
        self.calls.append(("reset",))
        self.locked = None


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state")


def test_levels_clock_and_counter(store):
    nvml = FakeNvml()
    dev = NvmlDevice(0, read_only=True, nvml=nvml, state_store=store)
    assert dev.freqs_mhz() == (345.0, 1950.0, 1965.0, 1980.0)
    assert dev.current_freq_mhz() == 1980.0
    nvml.energy_mj += 2500
    assert dev.energy_j() == pytest.approx(2.5)
    info = dev.describe()
    assert info["gpu"] == "NVIDIA H100 80GB HBM3" and info["energy_source"] == "total-energy counter"
    assert info["can_set_clocks"] is False and "--read-only" in info["why_not"]
    assert info["power_w"] == 120.0


def test_read_only_never_sets(store):
    nvml = FakeNvml()
    dev = NvmlDevice(0, read_only=True, nvml=nvml, state_store=store)
    with pytest.raises(DeviceError, match="read-only"):
        dev.set_freq_mhz(1950.0)
    dev.restore()
    assert nvml.calls == [] and store.all() == []


def test_lock_saves_state_and_restore_resets(store, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    nvml = FakeNvml()
    dev = NvmlDevice(0, nvml=nvml, state_store=store)
    dev.set_freq_mhz(1950.0)
    assert nvml.calls == [("lock", 1950, 1950)] and store.load("nvml:0") == {
        "key": "nvml:0",
        "backend": "nvml",
        "index": 0,
    }
    with pytest.raises(DeviceError, match="not a supported graphics clock"):
        dev.set_freq_mhz(1000.0)
    dev.restore()
    assert nvml.calls[-1] == ("reset",) and store.all() == []


def test_restore_saved_resets_a_killed_runs_lock(store, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    nvml = FakeNvml()
    NvmlDevice(0, nvml=nvml, state_store=store).set_freq_mhz(345.0)
    monkeypatch.setattr("edpilot.hardware.nvml.load_nvml", lambda: nvml)
    assert [s["backend"] for s in restore_saved(store)] == ["nvml"]
    assert nvml.locked is None


def test_not_root_is_read_only_not_a_crash(store, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    dev = NvmlDevice(0, nvml=FakeNvml(), state_store=store)
    assert dev.read_only and "root" in dev.read_only_reason


def test_permission_refused_by_nvml(store, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    dev = NvmlDevice(0, nvml=FakeNvml(allow_set=False), state_store=store)
    with pytest.raises(PermissionDenied, match="sudo, or use --read-only"):
        dev.set_freq_mhz(1950.0)


def test_falls_back_to_sampled_power(store):
    nvml = FakeNvml(has_counter=False)
    dev = NvmlDevice(0, read_only=True, nvml=nvml, state_store=store, sample_interval_s=0.005)
    try:
        assert dev.energy_source == "sampled power"
        e0, t0 = dev.energy_j(), time.monotonic()
        time.sleep(0.3)
        assert dev.energy_j() - e0 == pytest.approx(120.0 * (time.monotonic() - t0), rel=0.05)
    finally:
        dev.close()


def test_bad_index(store):
    with pytest.raises(DeviceError, match="no NVIDIA GPU at index 3"):
        NvmlDevice(3, nvml=FakeNvml(), state_store=store)
