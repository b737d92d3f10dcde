"""The NVML backend against a stand-in for the NVML library (no NVIDIA driver exists here).

The real library ran on an H100 (read-only): see benchmarks/nvml_check.py and the closing note.
"""

from __future__ import annotations

import time

import pytest

from edpilot.errors import DeviceError, PermissionDenied
from edpilot.hardware import restore_saved
from edpilot.hardware.nvml import NvmlDevice
from edpilot.hardware.nvml_api import NvmlApi, map_nvml_error
from edpilot.hardware.state import StateStore


class FakeNvml:
    """The subset of pynvml edpilot calls, with NVML's units (MHz, mW, mJ)."""

    NVML_CLOCK_GRAPHICS = 0

    class NVMLError(Exception):
        def __init__(self, value):  # pynvml's errors carry nvml.h's return code in .value
            super().__init__(value)
            self.value = value

        def __str__(self):
            return {2: "Invalid Argument", 3: "Not Supported", 4: "Insufficient Permissions"}.get(self.value, "?")

    class NVMLError_NoPermission(NVMLError):  # noqa: N801 - pynvml's name
        def __init__(self):
            super().__init__(4)

    def __init__(self, *, has_counter=True, allow_set=True, has_power=True):
        self.calls = []
        self.has_counter, self.allow_set, self.has_power = has_counter, allow_set, has_power
        self.locked = None
        self.energy_mj = 5_000_000
        self.power_mw = 120_000

    def nvmlDeviceGetHandleByIndex(self, index):  # noqa: N802
        if index != 0:
            raise self.NVMLError(2)
        return "h0"

    def nvmlDeviceGetName(self, h):  # noqa: N802
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetSupportedMemoryClocks(self, h):  # noqa: N802
        return [2619, 1593]

    def nvmlDeviceGetSupportedGraphicsClocks(self, h, mem):  # noqa: N802
        return [1980, 1965, 1950, 345] if mem == 2619 else [1200]

    def nvmlDeviceGetClockInfo(self, h, kind):  # noqa: N802
        return self.locked or 1980

    def nvmlDeviceGetCount(self):  # noqa: N802
        return 1

    def nvmlDeviceGetPowerUsage(self, h):  # noqa: N802
        if not self.has_power:
            raise self.NVMLError(3)
        return self.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h):  # noqa: N802
        if not self.has_counter:
            raise self.NVMLError(3)
        return self.energy_mj

    def nvmlDeviceSetGpuLockedClocks(self, h, lo, hi):  # noqa: N802
        if not self.allow_set:
            raise self.NVMLError_NoPermission()
        self.calls.append(("lock", lo, hi))
        self.locked = lo

    def nvmlDeviceResetGpuLockedClocks(self, h):  # noqa: N802
        self.calls.append(("reset",))
        self.locked = None


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state")


@pytest.fixture
def root(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)


def test_levels_clock_counter_and_capabilities(store):
    nvml = FakeNvml()
    dev = NvmlDevice(0, read_only=True, nvml=nvml, state_store=store)
    assert dev.freqs_mhz() == (345.0, 1950.0, 1965.0, 1980.0)
    assert dev.current_freq_mhz() == 1980.0
    nvml.energy_mj += 2500
    assert dev.energy_j() == pytest.approx(2.5)
    caps = dev.capabilities
    assert (caps.can_set_clocks, caps.dry_run, caps.has_meter, caps.meter_update_interval_ms) == (
        False,
        False,
        True,
        100,
    )
    assert "--read-only" in caps.read_only_reason
    info = dev.describe()
    assert info["gpu"] == "NVIDIA H100 80GB HBM3" and info["energy_source"] == "total-energy counter"
    assert info["can_set_clocks"] is False and "--read-only" in info["read_only_reason"]
    assert info["power_w"] == 120.0


def test_read_only_never_sets(store):
    nvml = FakeNvml()
    dev = NvmlDevice(0, read_only=True, nvml=nvml, state_store=store)
    with pytest.raises(DeviceError, match="may not change clocks"):
        dev.set_freq_mhz(1950.0)
    dev.restore()
    assert nvml.calls == [] and store.entries() == []


def test_dry_run_logs_and_never_writes_like_the_jetson(store, root, caplog):
    nvml = FakeNvml()
    dev = NvmlDevice(0, dry_run=True, nvml=nvml, state_store=store)
    caps = dev.capabilities
    assert caps.dry_run and not caps.can_set_clocks and caps.read_only_reason.startswith("dry run")
    with caplog.at_level("INFO"):
        dev.set_freq_mhz(1950.0)
    assert "would lock nvml:0 at 1950 MHz" in caplog.text and dev.would_set_mhz == 1950.0
    dev.restore()
    assert nvml.calls == [] and store.entries() == [] and not store.lock_path("nvml:0").exists()


def test_lock_saves_state_and_restore_resets(store, root):
    nvml = FakeNvml()
    dev = NvmlDevice(0, nvml=nvml, state_store=store)
    assert dev.capabilities.can_set_clocks and dev.capabilities.read_only_reason is None
    dev.set_freq_mhz(1950.0)
    assert nvml.calls == [("lock", 1950, 1950)]
    assert store.load("nvml:0") == {"key": "nvml:0", "backend": "nvml", "index": 0}
    with pytest.raises(DeviceError, match="not a supported graphics clock"):
        dev.set_freq_mhz(1000.0)
    dev.restore()
    dev.restore()
    assert nvml.calls[-1] == ("reset",) and nvml.calls.count(("reset",)) == 1 and store.entries() == []


def test_a_device_that_changed_nothing_restores_nothing(store, root):
    nvml = FakeNvml()
    NvmlDevice(0, nvml=nvml, state_store=store).set_freq_mhz(345.0)  # a held pin of another command
    other = NvmlDevice(0, nvml=nvml, state_store=store)
    other.restore()
    other.close()
    assert nvml.locked == 345 and store.load("nvml:0") is not None


def test_restore_saved_resets_a_killed_runs_lock(store, root):
    nvml = FakeNvml()
    dev = NvmlDevice(0, nvml=nvml, state_store=store)
    dev.set_freq_mhz(345.0)
    dev.close()  # as if killed: the lock goes with the process, the state file stays
    outcomes = restore_saved(store, nvml=NvmlApi(nvml))
    assert [(o.key, o.status) for o in outcomes] == [("nvml:0", "restored")]
    assert nvml.locked is None and store.entries() == []


def test_not_root_is_read_only_not_a_crash(store, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    dev = NvmlDevice(0, nvml=FakeNvml(), state_store=store)
    assert dev.capabilities.read_only_reason.startswith("no permission")
    with pytest.raises(PermissionDenied, match="sudo"):
        dev.set_freq_mhz(1950.0)


def test_permission_refused_by_nvml(store, root):
    dev = NvmlDevice(0, nvml=FakeNvml(allow_set=False), state_store=store)
    with pytest.raises(PermissionDenied, match="sudo, or use --read-only"):
        dev.set_freq_mhz(1950.0)


def test_falls_back_to_sampled_power(store):
    nvml = FakeNvml(has_counter=False)
    dev = NvmlDevice(0, read_only=True, nvml=nvml, state_store=store, sample_interval_s=0.005)
    try:
        assert dev.energy_source == "sampled power" and dev.capabilities.meter_update_interval_ms is None
        e0, t0 = dev.energy_j(), time.monotonic()
        time.sleep(0.3)
        assert dev.energy_j() - e0 == pytest.approx(120.0 * (time.monotonic() - t0), rel=0.05)
    finally:
        dev.close()


def test_no_counter_and_no_power_is_no_meter(store):
    dev = NvmlDevice(0, read_only=True, nvml=FakeNvml(has_counter=False, has_power=False), state_store=store)
    assert dev.capabilities.has_meter is False and dev.energy_j() is None
    assert dev.describe()["power_w"] is None


def test_a_failed_counter_read_is_missing_not_held(store):
    nvml = FakeNvml()
    dev = NvmlDevice(0, read_only=True, nvml=nvml, state_store=store)
    nvml.energy_mj += 1000
    assert dev.energy_j() == pytest.approx(1.0)
    nvml.has_counter = False
    assert dev.energy_j() is None


def test_bad_index(store):
    with pytest.raises(DeviceError, match=r"open GPU 3 .*`edpilot devices` lists the GPUs"):
        NvmlDevice(3, nvml=FakeNvml(), state_store=store)


class LostGpu(FakeNvml):
    """Every device call after opening fails as a GPU that fell off the bus."""

    lost = False

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if name.startswith("nvmlDevice") and super().__getattribute__("lost"):

            def fail(*args):
                raise FakeNvml.NVMLError(15)

            return fail
        return attr


def test_every_nvml_call_goes_through_the_error_mapping(store, root):
    nvml = LostGpu()
    dev = NvmlDevice(0, nvml=nvml, state_store=store)
    dev.set_freq_mhz(1950.0)
    nvml.lost = True
    assert dev.current_freq_mhz() is None and dev.energy_j() is None
    assert dev.describe()["current_freq_mhz"] is None
    for call in (lambda: dev.set_freq_mhz(345.0), dev.restore, dev.power_w):
        with pytest.raises(DeviceError, match="fallen off the bus"):
            call()


@pytest.mark.parametrize(
    "code,advice",
    [(9, "driver is not loaded"), (12, "libnvidia-ml.so"), (3, "does not support"), (18, "reboot")],
)
def test_nvml_errors_say_what_to_do(code, advice):
    error = map_nvml_error(FakeNvml.NVMLError(code), what="do it")
    assert type(error) is DeviceError and error.args[0].startswith("NVML could not do it") and advice in str(error)
    assert isinstance(map_nvml_error(FakeNvml.NVMLError_NoPermission(), what="x"), PermissionDenied)


def test_real_nvml_library_without_a_driver_is_one_clear_error():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pytest.skip("an NVIDIA driver is present")
    with pytest.raises(DeviceError, match="NVML could not initialise NVML .*install the NVIDIA driver"):
        NvmlApi.load()
