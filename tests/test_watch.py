"""`edpilot.watch`: what `edpilot top` reads from an NVIDIA GPU (a stand-in for NVML) and the simulator."""

from __future__ import annotations

import pytest

from edpilot.clock import WallClock
from edpilot.hardware.nvml import NvmlDevice
from edpilot.hardware.state import StateStore
from edpilot.watch import DeviceReader
from tests.hardware.test_nvml import FakeNvml


class MemClockNvml(FakeNvml):
    """The stand-in plus the memory clock, as pynvml names it."""

    NVML_CLOCK_MEM = 2

    def nvmlDeviceGetClockInfo(self, h, kind):  # noqa: N802
        return 2619 if kind == self.NVML_CLOCK_MEM else super().nvmlDeviceGetClockInfo(h, kind)


def test_nvml_reading(tmp_path):
    fake = MemClockNvml()
    device = NvmlDevice(0, nvml=fake, read_only=True, state_store=StateStore(tmp_path / "state"))
    try:
        reader = DeviceReader(device)
        assert reader.rails == ("board",)
        first = reader.read()
        assert (first.knobs, first.governor) == ({"gpu_mhz": 1980.0, "mem_mhz": 2619.0}, None)
        assert first.rails_w == {"board": 120.0} and first.energy_j == 0.0 and first.power_w is None
        WallClock().sleep(0.05)
        fake.energy_mj += 6_000
        second = reader.read()
        assert second.energy_j == pytest.approx(6.0)
        assert 0 < second.power_w <= 6.0 / 0.05  # 6 J over at least the 50 ms slept
        fake.has_power = False
        fake.has_counter = False
        third = reader.read()
        assert third.rails_w == {"board": None} and third.energy_j is None and third.power_w is None
        fake.has_counter = True
        assert reader.read().power_w is None  # no mean across a reading that failed
    finally:
        device.close()
