"""`--device jetson`: GPU clock through devfreq, memory clock through the BPMP (debugfs), energy from the INA3221
rails, everything under a sysfs root. Each knob is saved before its first change and undone through one guard."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from edpilot.clock import WallClock
from edpilot.errors import ConfigError, DeviceError, PermissionDenied
from edpilot.hardware import devfreq, emc
from edpilot.hardware.base import EMC_KNOB, GPU_KNOB, DeviceCapabilities, Knob, gpu_knob, refuse_unless_settable
from edpilot.hardware.devfreq import ALLOW_HINT, GpuDevfreq, find_gpu_devfreq
from edpilot.hardware.emc import EMC_ALLOW_HINT, EmcClock, open_emc
from edpilot.hardware.ina3221 import PowerRails, open_rails
from edpilot.hardware.meter import SampledEnergyMeter
from edpilot.hardware.state import StateStore
from edpilot.hardware.sysfs import read_attr, sysfs_root
from edpilot.hardware.undo import KnobGuard, RestoreContext

log = logging.getLogger(__name__)

SETTLE_TIMEOUT_S = 1.0  # how long to wait for cur_freq (or the memory clock's rate) to reach a pinned level
EMC_CONFIRM_S = 0.01  # the rate is read again after this: a new EMC level takes ~8 ms to take effect (docs/hardware.md)
NVPMODEL_STATUS = "var/lib/nvpmodel/status"
DRY_RUN_REASON = "dry run: clocks are never changed; the level each round would set is logged"
READ_ONLY_REASON = "--read-only was given: clocks are never changed"


class JetsonDevice:
    """A Jetson: exact GPU and memory-clock levels, a sampled joule counter over the chosen rails, undo on restore."""

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        rails: Sequence[str] | None = None,
        dry_run: bool = False,
        read_only: bool = False,
        sample_interval_s: float = 0.02,
        state_store: StateStore | None = None,
    ) -> None:
        if dry_run and read_only:
            raise ConfigError("--dry-run and --read-only exclude each other: choose one")
        self.root = sysfs_root(root)
        self.gpu = GpuDevfreq(find_gpu_devfreq(self.root))
        self.rails: PowerRails = open_rails(self.root, rails)
        self.clock = WallClock()
        self.store = state_store or StateStore()
        self.key = f"jetson:{self.gpu.node}"
        self.name = f"jetson:{self.gpu.name}"
        reason = READ_ONLY_REASON if read_only else DRY_RUN_REASON if dry_run else None
        if reason is None and not self.gpu.can_write():
            reason = f"no permission to write {self.gpu.node}/min_freq and max_freq. {ALLOW_HINT}"
        self.capabilities = DeviceCapabilities(
            can_set_clocks=reason is None,
            read_only_reason=reason,
            dry_run=dry_run,
            has_meter=True,
            meter_update_interval_ms=self.rails.update_interval_ms,
        )
        self.emc: EmcClock | None = None
        self.emc_reason: str | None = READ_ONLY_REASON if read_only else DRY_RUN_REASON if dry_run else None
        try:
            self.emc = open_emc(self.root)
            if self.emc_reason is None and not self.emc.can_write():
                self.emc_reason = f"no permission to write {self.emc.clk}/rate and mrq_rate_locked. {EMC_ALLOW_HINT}"
        except DeviceError as exc:  # no debugfs, not root, no BPMP clock: the GPU knob still works
            self.emc_reason = str(exc)
        self.emc_key = f"{self.key}:emc"
        self.would_set_mhz: float | None = None
        self.would_set_emc_mhz: float | None = None
        self.last_switch_s: float | None = None
        self.last_emc_switch_s: float | None = None
        self.emc_confirm_s = EMC_CONFIRM_S
        self._guard = KnobGuard(self.store, device_key=self.key, name=self.name, context=RestoreContext(self.root))
        self._meter = SampledEnergyMeter(self.rails.power_w, interval_s=sample_interval_s, what=f"{self.name} rails")

    def freqs_mhz(self) -> tuple[float, ...]:
        """Exact levels in MHz (Hz / 1e6, e.g. 1020.75)."""
        return tuple(hz / 1e6 for hz in self.gpu.levels_hz)

    def current_freq_mhz(self) -> float | None:
        """cur_freq in MHz, or None when it cannot be read."""
        try:
            return self.gpu.cur_hz() / 1e6
        except DeviceError as exc:
            log.warning("%s: %s", self.name, exc)
            return None

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Pin a level (lock taken and original saved first) and wait until cur_freq shows it; a dry run logs it."""
        level_hz = min(self.gpu.levels_hz, key=lambda hz: abs(hz / 1e6 - freq_mhz))
        if not abs(level_hz / 1e6 - freq_mhz) <= 0.5:
            raise DeviceError(f"{freq_mhz:g} MHz is not a level of {self.name}")
        if self.capabilities.dry_run:
            self.would_set_mhz = level_hz / 1e6
            log.info("dry run: would pin %s at %g MHz", self.name, level_hz / 1e6)
            return
        refuse_unless_settable(self)
        self._guard.save(self.key, devfreq.STATE_KIND, {"node": str(self.gpu.node), **self._checked_gpu_state()})
        start_s = self.clock.now_s()
        self.gpu.pin(level_hz)
        while self.gpu.cur_hz() != level_hz:
            if self.clock.now_s() - start_s > SETTLE_TIMEOUT_S:
                raise DeviceError(
                    f"{self.name} did not reach {level_hz} Hz within {SETTLE_TIMEOUT_S:g} s "
                    f"(cur_freq {self.gpu.cur_hz()} Hz); is another tool (jetson_clocks, nvpmodel) setting clocks?"
                )
            self.clock.sleep(0.005)
        self.last_switch_s = self.clock.now_s() - start_s

    def _checked_gpu_state(self) -> dict[str, object]:
        original = self.gpu.state()
        self.gpu.check(original)  # what cannot be put back is never changed
        return asdict(original)

    def knobs(self) -> tuple[Knob, ...]:
        """The GPU clock, then the memory clock (no levels when debugfs cannot be read; read-only saying why)."""
        levels = () if self.emc is None else tuple(hz / 1e6 for hz in self.emc.levels_hz)
        emc_knob = Knob(
            EMC_KNOB,
            "MHz",
            levels,
            writable=self.emc_reason is None,
            read_only_reason=self.emc_reason,
            levels_source=None if self.emc is None else self.emc.levels_source,
        )
        return gpu_knob(self), emc_knob

    def knob_level(self, name: str) -> float | None:
        """The GPU clock or the memory clock now (MHz), or None when it cannot be read."""
        if name == GPU_KNOB:
            return self.current_freq_mhz()
        if name != EMC_KNOB:
            raise DeviceError(f"{self.name} has no knob {name!r} (knobs: {GPU_KNOB}, {EMC_KNOB})")
        if self.emc is None:
            return None
        try:
            return self.emc.rate_hz() / 1e6
        except DeviceError as exc:
            log.warning("%s: %s", self.name, exc)
            return None

    def set_knob(self, name: str, level: float) -> None:
        """Turn `gpu_mhz` (as set_freq_mhz) or `emc_mhz` (pin the memory clock) to one of its levels."""
        if name == GPU_KNOB:
            self.set_freq_mhz(level)
        elif name == EMC_KNOB:
            self.set_emc_mhz(level)
        else:
            raise DeviceError(f"{self.name} has no knob {name!r} (knobs: {GPU_KNOB}, {EMC_KNOB})")

    def set_emc_mhz(self, emc_mhz: float) -> None:
        """Pin the memory clock (lock taken, original saved first) and wait until `rate` shows it; a dry run logs it."""
        knob = self.knobs()[1]
        if self.emc is None or (self.emc_reason is not None and not self.capabilities.dry_run):
            error = PermissionDenied if str(self.emc_reason).startswith("no permission") else DeviceError
            raise error(f"{self.name} may not change the memory clock: {self.emc_reason}")
        level_mhz = knob.level(emc_mhz)
        level_hz = min(self.emc.levels_hz, key=lambda hz: abs(hz / 1e6 - level_mhz))
        if self.capabilities.dry_run:
            self.would_set_emc_mhz = level_hz / 1e6
            log.info("dry run: would pin %s memory clock at %g MHz", self.name, level_hz / 1e6)
            return
        original = self.emc.state()
        self.emc.check(original)  # what cannot be put back is never changed
        saved = {"clk": str(self.emc.clk), "rate_hz": original.rate_hz, "mrq_rate_locked": int(original.locked)}
        self._guard.save(self.emc_key, emc.STATE_KIND, saved)
        start_s = self.clock.now_s()
        self.emc.pin(level_hz)
        while self.emc.rate_hz() != level_hz or not self._emc_held(level_hz):
            if self.clock.now_s() - start_s > SETTLE_TIMEOUT_S:
                raise DeviceError(
                    f"the memory clock of {self.name} did not reach {level_hz} Hz within {SETTLE_TIMEOUT_S:g} s "
                    f"(rate {self.emc.rate_hz()} Hz): the BPMP drops rates it does not hold in its table or above "
                    "max_rate; is another tool (jetson_clocks, nvpmodel) setting clocks?"
                )
            self.clock.sleep(0.005)
        self.last_emc_switch_s = self.clock.now_s() - start_s

    def _emc_held(self, level_hz: int) -> bool:
        """Whether the memory clock still reads `level_hz` after `emc_confirm_s` (a dropped request reads back)."""
        self.clock.sleep(self.emc_confirm_s)
        return self.emc is not None and self.emc.rate_hz() == level_hz

    def energy_j(self) -> float | None:
        """Joules integrated over the total rails since the device was opened; None once a rail read failed."""
        return self._meter.energy_j()

    @property
    def update_interval_ms(self) -> int | None:
        """How long the INA3221 averages each reading (ms), if the driver says."""
        return self.rails.update_interval_ms

    def gpu_load_pct(self) -> float | None:
        """GPU load in percent from the `load` file (per mille), if there is one."""
        for path in (
            self.gpu.node.parent.parent / "load",
            self.root / "sys/devices/gpu.0/load",
            self.root / "sys/devices/platform/gpu.0/load",
        ):
            if path.is_file():
                return int(read_attr(path)) / 10
        return None

    def nvpmodel_mode(self) -> str | None:
        """The nvpmodel power mode (e.g. 'pmode:0000'), if readable."""
        path = self.root / NVPMODEL_STATUS
        return read_attr(path) if path.is_file() else None

    def describe(self) -> dict[str, object]:
        """Everything `edpilot devices` and the run log show."""
        state = self.gpu.state()
        return {
            "backend": "jetson",
            "name": self.name,
            "devfreq": str(self.gpu.node),
            "freqs_mhz": list(self.freqs_mhz()),
            "current_freq_mhz": self.current_freq_mhz(),
            "min_freq_mhz": state.min_hz / 1e6,
            "max_freq_mhz": state.max_hz / 1e6,
            "governor": state.governor,
            "rails_w": self.rails.readings_w(),
            "total_rails": [r.label for r in self.rails.total],
            "update_interval_ms": self.update_interval_ms,
            "gpu_load_pct": self.gpu_load_pct(),
            "nvpmodel": self.nvpmodel_mode(),
            "memory_clock": self._describe_emc(),
            **asdict(self.capabilities),
        }

    def _describe_emc(self) -> dict[str, object]:
        knob = self.knobs()[1]
        info: dict[str, object] = {"levels_mhz": list(knob.levels), "levels_source": knob.levels_source}
        if self.emc is not None:
            info["rate_mhz"] = self.knob_level(EMC_KNOB)
            try:
                info["min_rate_mhz"] = self.emc.min_rate_hz() / 1e6
                info["max_rate_mhz"] = self.emc.max_rate_hz() / 1e6
                info["locked"] = self.emc.locked()
            except DeviceError as exc:
                info["error"] = str(exc)
        info["writable"] = knob.writable
        info["read_only_reason"] = knob.read_only_reason
        return info

    def restore(self) -> None:
        """Put back every knob this object changed (memory clock, then GPU min/max/governor), forget their states."""
        self._guard.undo()

    def close(self) -> None:
        """Stop the power sampler and release the device lock (never restores: that is `restore()`)."""
        self._meter.close()
        self._guard.release()
