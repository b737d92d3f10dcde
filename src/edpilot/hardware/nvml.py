"""`--device nvml[:INDEX]`: a discrete NVIDIA GPU through NVML (extra `[nvml]`: nvidia-ml-py).

Levels are the supported graphics clocks at the highest memory clock; pinning uses locked clocks and
undoing resets them. Energy comes from the total-energy counter (mJ; about every 100 ms on an H100),
else from sampled board power. A GPU whose clocks this process may not change is a read-only device.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

from edpilot.clock import WallClock
from edpilot.errors import DeviceError, PermissionDenied
from edpilot.hardware.base import DeviceCapabilities
from edpilot.hardware.meter import SampledEnergyMeter
from edpilot.hardware.state import StateStore

log = logging.getLogger(__name__)

COUNTER_UPDATE_MS = 100  # H100 total-energy counter refresh, as NVIDIA documents it for recent GPUs


def load_nvml() -> ModuleType:
    """Import and initialise pynvml, or explain how to get it."""
    try:
        import pynvml
    except ImportError:
        raise DeviceError("the nvml device needs nvidia-ml-py: pip install 'edpilot[nvml]'") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise DeviceError(f"cannot initialise NVML ({exc}); is the NVIDIA driver loaded?") from None
    return pynvml


class NvmlDevice:
    """One NVIDIA GPU; `read_only=True` never changes a clock."""

    clock = WallClock()

    def __init__(
        self,
        index: int = 0,
        *,
        read_only: bool = False,
        nvml: ModuleType | Any | None = None,
        state_store: StateStore | None = None,
        sample_interval_s: float = 0.02,
    ) -> None:
        self.nvml = nvml or load_nvml()
        try:
            self.handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
            self.gpu_name = _text(self.nvml.nvmlDeviceGetName(self.handle))
        except self.nvml.NVMLError as exc:
            raise DeviceError(f"no NVIDIA GPU at index {index}: {exc}") from None
        self.index = index
        self.name = f"nvml:{index}"
        self.key = f"nvml:{index}"
        self.store = state_store or StateStore()
        self.read_only_reason: str | None = None
        if read_only:
            self.read_only_reason = "--read-only was given"
        elif hasattr(os, "geteuid") and os.geteuid() != 0:
            self.read_only_reason = "changing GPU clocks through NVML needs root (run with sudo)"
        self.read_only = self.read_only_reason is not None
        mem_clocks = self.nvml.nvmlDeviceGetSupportedMemoryClocks(self.handle)
        self.mem_clock_mhz = max(mem_clocks)
        self._levels = tuple(
            sorted(float(f) for f in self.nvml.nvmlDeviceGetSupportedGraphicsClocks(self.handle, self.mem_clock_mhz))
        )
        self._meter: SampledEnergyMeter | None = None
        self.capabilities = DeviceCapabilities(
            can_set_clocks=not self.read_only, read_only_reason=self.read_only_reason, meter_update_interval_ms=100.0
        )
        try:
            self._counter_start_mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.energy_source = "total-energy counter"
        except self.nvml.NVMLError:
            self._meter = SampledEnergyMeter(self.power_w, interval_s=sample_interval_s)
            self.energy_source = "sampled power"

    def freqs_mhz(self) -> tuple[float, ...]:
        """Supported graphics clocks (MHz) at the highest memory clock, ascending."""
        return self._levels

    def current_freq_mhz(self) -> float:
        """The graphics (SM) clock right now (MHz)."""
        return float(self.nvml.nvmlDeviceGetClockInfo(self.handle, self.nvml.NVML_CLOCK_GRAPHICS))

    def power_w(self) -> float:
        """Board power now (W)."""
        return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0

    def energy_j(self) -> float:
        """Joules since the device was opened."""
        if self._meter is not None:
            return self._meter.energy_j()
        return (self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - self._counter_start_mj) / 1000.0

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Lock the graphics clock at one supported level (original state saved first)."""
        if self.read_only:
            raise DeviceError(f"{self.name} is read-only: {self.read_only_reason}")
        if freq_mhz not in self._levels:
            raise DeviceError(f"{freq_mhz:g} MHz is not a supported graphics clock of {self.name}")
        self.store.save(self.key, {"backend": "nvml", "index": self.index})
        try:
            self.nvml.nvmlDeviceSetGpuLockedClocks(self.handle, int(freq_mhz), int(freq_mhz))
        except self.nvml.NVMLError_NoPermission:
            raise PermissionDenied(
                f"NVML refused to lock the clocks of {self.name}: run with sudo, or use --read-only"
            ) from None

    def describe(self) -> dict[str, object]:
        """What `edpilot devices` and the run log show."""
        return {
            "backend": "nvml",
            "name": self.name,
            "gpu": self.gpu_name,
            "freqs_mhz": list(self._levels),
            "current_freq_mhz": self.current_freq_mhz(),
            "memory_clock_mhz": self.mem_clock_mhz,
            "power_w": self.power_w(),
            "energy_source": self.energy_source,
            "counter_update_ms": COUNTER_UPDATE_MS if self._meter is None else None,
            "can_set_clocks": not self.read_only,
            "why_not": self.read_only_reason,
        }

    def restore(self) -> None:
        """Reset locked clocks if this device locked them (idempotent; a read-only device never touches them)."""
        if self.read_only or self.store.load(self.key) is None:
            return
        self.nvml.nvmlDeviceResetGpuLockedClocks(self.handle)
        self.store.remove(self.key)

    def close(self) -> None:
        """Stop the power sampler, if one runs."""
        if self._meter is not None:
            self._meter.close()


def restore_nvml(saved: dict[str, object], nvml: ModuleType | Any | None = None) -> None:
    """Undo from a saved state file: reset the GPU's locked clocks."""
    nvml = nvml or load_nvml()
    nvml.nvmlDeviceResetGpuLockedClocks(nvml.nvmlDeviceGetHandleByIndex(int(str(saved["index"]))))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
