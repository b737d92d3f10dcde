"""`--device nvml[:INDEX]`: a discrete NVIDIA GPU through NVML (extra `[nvml]`: nvidia-ml-py).

Levels are the supported graphics clocks at the highest memory clock; pinning uses locked clocks and
undoing resets them. Energy comes from the total-energy counter (mJ; about every 100 ms on an H100),
else from sampled board power. A GPU whose clocks this process may not change is a read-only device.
Every NVML call goes through `NvmlApi` (errors become DeviceError saying what to do).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from types import ModuleType
from typing import Any

from edpilot.clock import WallClock
from edpilot.errors import ConfigError, DeviceError
from edpilot.hardware.base import GPU_KNOB, DeviceCapabilities, Knob, gpu_knob, refuse_unless_settable
from edpilot.hardware.devfreq import StaleState
from edpilot.hardware.lock import DeviceLock
from edpilot.hardware.meter import SampledEnergyMeter
from edpilot.hardware.nvml_api import NvmlApi
from edpilot.hardware.nvml_clocks import MEM_KNOB, current_memory_clock_mhz, memory_clock_knob
from edpilot.hardware.state import StateStore

log = logging.getLogger(__name__)

COUNTER_UPDATE_MS = 100  # H100 total-energy counter refresh, as NVIDIA documents it for recent GPUs


class NvmlDevice:
    """One NVIDIA GPU; `read_only=True` never changes a clock, `dry_run=True` logs what it would set."""

    def __init__(
        self,
        index: int = 0,
        *,
        dry_run: bool = False,
        read_only: bool = False,
        nvml: NvmlApi | ModuleType | Any | None = None,
        state_store: StateStore | None = None,
        sample_interval_s: float = 0.02,
    ) -> None:
        if dry_run and read_only:
            raise ConfigError("--dry-run and --read-only exclude each other: choose one")
        self.nvml = nvml if isinstance(nvml, NvmlApi) else NvmlApi(nvml) if nvml is not None else load_nvml()
        self.index = index
        self.name = self.key = f"nvml:{index}"
        self.handle = self.nvml.call("nvmlDeviceGetHandleByIndex", index, what=f"open GPU {index}")
        self.gpu_name = _text(self.nvml.call("nvmlDeviceGetName", self.handle, what="read the GPU's name"))
        self.clock = WallClock()
        self.store = state_store or StateStore()
        mem_clocks = self.nvml.call("nvmlDeviceGetSupportedMemoryClocks", self.handle, what="list memory clocks")
        self.mem_clock_mhz = max(mem_clocks)
        graphics = self.nvml.call(
            "nvmlDeviceGetSupportedGraphicsClocks", self.handle, self.mem_clock_mhz, what="list graphics clocks"
        )
        self._levels = tuple(sorted(float(f) for f in graphics))
        self._meter: SampledEnergyMeter | None = None
        self._counter_start_mj: int | None = None
        self.energy_source: str | None = "total-energy counter"
        try:
            self._counter_start_mj = self._counter_mj()
        except DeviceError:
            self.energy_source = "sampled power"
            try:
                self._meter = SampledEnergyMeter(self.power_w, interval_s=sample_interval_s, what=f"{self.name} power")
            except DeviceError as exc:
                log.warning("%s has no energy meter: %s", self.name, exc)
                self.energy_source = None
        reason = "--read-only was given: clocks are never changed" if read_only else None
        if dry_run:
            reason = "dry run: clocks are never changed; the level each round would set is logged"
        elif reason is None and hasattr(os, "geteuid") and os.geteuid() != 0:
            reason = "no permission to lock clocks: NVML needs root (run with sudo)"
        self.capabilities = DeviceCapabilities(
            can_set_clocks=reason is None,
            read_only_reason=reason,
            dry_run=dry_run,
            has_meter=self.energy_source is not None,
            meter_update_interval_ms=COUNTER_UPDATE_MS if self._counter_start_mj is not None else None,
        )
        self.would_set_mhz: float | None = None
        self._lock = DeviceLock(self.store.lock_path(self.key), name=self.name)
        self._changed = False

    def _counter_mj(self) -> int:
        return int(self.nvml.call("nvmlDeviceGetTotalEnergyConsumption", self.handle, what="read the energy counter"))

    def freqs_mhz(self) -> tuple[float, ...]:
        """Supported graphics clocks (MHz) at the highest memory clock, ascending."""
        return self._levels

    def current_freq_mhz(self) -> float | None:
        """The graphics (SM) clock right now (MHz), or None when NVML cannot read it."""
        try:
            kind = self.nvml.const("NVML_CLOCK_GRAPHICS")
            return float(self.nvml.call("nvmlDeviceGetClockInfo", self.handle, kind, what="read the graphics clock"))
        except DeviceError as exc:
            log.warning("%s: %s", self.name, exc)
            return None

    def power_w(self) -> float:
        """Board power now (W)."""
        power_mw: float = self.nvml.call("nvmlDeviceGetPowerUsage", self.handle, what="read board power")
        return power_mw / 1000.0

    def _power_or_none(self) -> float | None:
        try:
            return self.power_w()
        except DeviceError:
            return None

    def energy_j(self) -> float | None:
        """Joules since the device was opened, or None when this reading failed."""
        if self._meter is not None:
            return self._meter.energy_j()
        if self._counter_start_mj is None:
            return None
        try:
            return (self._counter_mj() - self._counter_start_mj) / 1000.0
        except DeviceError as exc:
            log.warning("%s: energy is missing for this reading: %s", self.name, exc)
            return None

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Lock the graphics clock at one supported level (lock taken and state saved first); a dry run logs it."""
        if freq_mhz not in self._levels:
            raise DeviceError(f"{freq_mhz:g} MHz is not a supported graphics clock of {self.name}")
        if self.capabilities.dry_run:
            self.would_set_mhz = freq_mhz
            log.info("dry run: would lock %s at %g MHz", self.name, freq_mhz)
            return
        refuse_unless_settable(self)
        self.store.ensure_directory()
        self._lock.acquire()
        self.store.save(self.key, {"backend": "nvml", "index": self.index})
        self._changed = True
        mhz = int(freq_mhz)
        self.nvml.call("nvmlDeviceSetGpuLockedClocks", self.handle, mhz, mhz, what=f"lock {self.name} at {mhz} MHz")

    def knobs(self) -> tuple[Knob, ...]:
        """The graphics clock, then the memory clock (read-only: its levels are reported, never locked)."""
        return gpu_knob(self), memory_clock_knob(self.nvml, self.handle)

    def knob_level(self, name: str) -> float | None:
        """The graphics or memory clock now (MHz), or None when NVML cannot read it."""
        if name not in (GPU_KNOB, MEM_KNOB):
            raise DeviceError(f"{self.name} has no knob {name!r} (knobs: {GPU_KNOB}, {MEM_KNOB})")
        return self.current_freq_mhz() if name == GPU_KNOB else current_memory_clock_mhz(self.nvml, self.handle)

    def set_knob(self, name: str, level: float) -> None:
        """Lock the graphics clock (as set_freq_mhz); the memory clock is read-only."""
        if name != GPU_KNOB:
            raise DeviceError(
                f"{self.name} may not change {name}: {memory_clock_knob(self.nvml, self.handle).read_only_reason}"
            )
        self.set_freq_mhz(level)

    def describe(self) -> dict[str, object]:
        """What `edpilot devices` and the run log show."""
        return {
            "backend": "nvml",
            "name": self.name,
            "gpu": self.gpu_name,
            "freqs_mhz": list(self._levels),
            "current_freq_mhz": self.current_freq_mhz(),
            "memory_clock_mhz": self.mem_clock_mhz,
            "memory_clocks_mhz": list(memory_clock_knob(self.nvml, self.handle).levels),
            "power_w": self._power_or_none(),
            "energy_source": self.energy_source,
            **asdict(self.capabilities),
        }

    def restore(self) -> None:
        """Reset locked clocks if this object locked them, then forget the state (idempotent)."""
        if self._changed:
            self.nvml.call("nvmlDeviceResetGpuLockedClocks", self.handle, what=f"reset the clocks of {self.name}")
            self.store.remove(self.key)
            self._changed = False
        self._lock.release()

    def close(self) -> None:
        """Stop the power sampler, if one runs, and release the device lock."""
        if self._meter is not None:
            self._meter.close()
        self._lock.release()


def load_nvml() -> NvmlApi:
    """pynvml, imported, initialised and wrapped (DeviceError saying what to do if it cannot be)."""
    return NvmlApi.load()


def restore_nvml(saved: dict[str, object], *, nvml: NvmlApi | None = None) -> int:
    """Undo a saved NVML state: reset the GPU's locked clocks; return the number of resets (1)."""
    index = saved.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise DeviceError("an nvml state needs a GPU index (a whole number >= 0)")
    nvml = nvml or NvmlApi.load()
    if index >= nvml.device_count():
        raise StaleState(f"there is no GPU {index} any more")
    handle = nvml.call("nvmlDeviceGetHandleByIndex", index, what=f"open GPU {index}")
    nvml.call("nvmlDeviceResetGpuLockedClocks", handle, what=f"reset the clocks of GPU {index}")
    return 1


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
