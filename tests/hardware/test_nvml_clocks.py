"""NVML's memory clock: its supported levels reported as a read-only knob, never locked."""

from __future__ import annotations

import pytest

from edpilot.errors import DeviceError
from edpilot.hardware.nvml import NvmlDevice
from edpilot.hardware.nvml_api import NvmlApi
from edpilot.hardware.nvml_clocks import current_memory_clock_mhz, memory_clock_knob
from edpilot.hardware.state import StateStore
from tests.hardware.test_nvml import FakeNvml


class H200(FakeNvml):
    """An H200 lists one memory clock (HBM3e); its memory clock reading is NVML_CLOCK_MEM."""

    NVML_CLOCK_MEM = 2

    def nvmlDeviceGetSupportedMemoryClocks(self, h):  # noqa: N802
        return [3201]

    def nvmlDeviceGetSupportedGraphicsClocks(self, h, mem):  # noqa: N802
        return [1980, 345] if mem == 3201 else []

    def nvmlDeviceGetClockInfo(self, h, kind):  # noqa: N802
        return 3201 if kind == self.NVML_CLOCK_MEM else 1980


def test_the_memory_clock_is_a_read_only_knob_with_the_listed_levels(tmp_path):
    fake = H200()
    dev = NvmlDevice(0, nvml=fake, state_store=StateStore(tmp_path))
    try:
        gpu, mem = dev.knobs()
        assert gpu.name == "gpu_mhz" and gpu.levels == (345.0, 1980.0)
        assert mem.name == "mem_mhz" and mem.levels == (3201.0,) and not mem.writable
        assert "never locks" in mem.read_only_reason and mem.levels_source == "nvmlDeviceGetSupportedMemoryClocks"
        assert dev.knob_level("mem_mhz") == 3201.0 and dev.describe()["memory_clocks_mhz"] == [3201.0]
        with pytest.raises(DeviceError, match="may not change mem_mhz"):
            dev.set_knob("mem_mhz", 3201)
        assert fake.calls == []
    finally:
        dev.close()


def test_levels_nvml_cannot_list_are_missing_and_say_why():
    class Refuses(H200):
        def nvmlDeviceGetSupportedMemoryClocks(self, h):  # noqa: N802
            raise self.NVMLError(3)

    api = NvmlApi(Refuses())
    knob = memory_clock_knob(api, "h0")
    assert (
        knob.levels == () and "could not be listed" in knob.read_only_reason and "not support" in knob.read_only_reason
    )
    assert current_memory_clock_mhz(api, "h0") == 3201.0
