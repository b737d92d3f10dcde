"""`--device jetson`: GPU clock through devfreq, energy from the INA3221 rails, everything under a sysfs root."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from edpilot.clock import WallClock
from edpilot.errors import DeviceError
from edpilot.hardware.base import DeviceCapabilities
from edpilot.hardware.devfreq import ALLOW_HINT, DevfreqState, GpuDevfreq, find_gpu_devfreq
from edpilot.hardware.ina3221 import PowerRails, open_rails
from edpilot.hardware.meter import SampledEnergyMeter
from edpilot.hardware.state import StateStore
from edpilot.hardware.sysfs import read_attr, sysfs_root

log = logging.getLogger(__name__)

SETTLE_TIMEOUT_S = 1.0  # how long to wait for cur_freq to reach a pinned level
NVPMODEL_STATUS = "var/lib/nvpmodel/status"


class JetsonDevice:
    """A Jetson GPU: exact devfreq levels, a sampled joule counter over the chosen rails, undo on restore."""

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
        self.root = sysfs_root(root)
        self.gpu = GpuDevfreq(find_gpu_devfreq(self.root))
        self.rails: PowerRails = open_rails(self.root, rails)
        self.dry_run = dry_run
        self.read_only = read_only
        self.read_only_reason = "--read-only was given" if read_only else None
        self.store = state_store or StateStore()
        self.key = f"jetson:{self.gpu.node}"
        self.name = f"jetson:{self.gpu.name}"
        self.would_set_mhz: float | None = None
        self.last_switch_s: float | None = None
        self._meter = SampledEnergyMeter(self.rails.power_w, interval_s=sample_interval_s)

    clock = WallClock()

    @property
    def capabilities(self) -> DeviceCapabilities:
        """Clocks settable unless read-only or a dry run; the rails' meter and its averaging interval."""
        reason = self.read_only_reason or ("dry run: clocks are never written" if self.dry_run else None)
        return DeviceCapabilities(
            can_set_clocks=reason is None,
            read_only_reason=reason,
            dry_run=self.dry_run,
            meter_update_interval_ms=self.update_interval_ms,
        )

    def freqs_mhz(self) -> tuple[float, ...]:
        """Exact levels in MHz (Hz / 1e6, e.g. 1020.75)."""
        return tuple(hz / 1e6 for hz in self.gpu.levels_hz)

    def current_freq_mhz(self) -> float:
        """cur_freq in MHz."""
        return self.gpu.cur_hz() / 1e6

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Pin a level (saving the original state first) and wait until cur_freq shows it."""
        level_hz = min(self.gpu.levels_hz, key=lambda hz: abs(hz / 1e6 - freq_mhz))
        if abs(level_hz / 1e6 - freq_mhz) > 0.5:
            raise DeviceError(f"{freq_mhz:g} MHz is not a level of {self.name}")
        if self.read_only:
            raise DeviceError(f"{self.name} is read-only: {self.read_only_reason}")
        if self.dry_run:
            self.would_set_mhz = level_hz / 1e6
            log.info("dry run: would pin %s at %g MHz", self.name, level_hz / 1e6)
            return
        original = self.gpu.state()
        self.store.save(self.key, {"backend": "jetson", "node": str(self.gpu.node), **original.__dict__})
        clock = WallClock()
        start_s = clock.now_s()
        self.gpu.pin(level_hz)
        while self.gpu.cur_hz() != level_hz:
            if clock.now_s() - start_s > SETTLE_TIMEOUT_S:
                raise DeviceError(
                    f"{self.name} did not reach {level_hz} Hz within {SETTLE_TIMEOUT_S:g} s "
                    f"(cur_freq {self.gpu.cur_hz()} Hz); is another tool (jetson_clocks, nvpmodel) setting clocks?"
                )
            clock.sleep(0.005)
        self.last_switch_s = clock.now_s() - start_s

    def energy_j(self) -> float:
        """Joules integrated over the total rails since the device was opened."""
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
        can_write = self.gpu.can_write()
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
            "dry_run": self.dry_run,
            "read_only": self.read_only,
            "can_set_clocks": can_write and not self.read_only,
            "why_not": None if can_write else f"cannot write {self.gpu.node}/min_freq and max_freq. {ALLOW_HINT}",
        }

    def restore(self) -> None:
        """Put back the saved min/max/governor and forget the saved state (idempotent)."""
        saved = self.store.load(self.key)
        if saved is None:
            return
        restore_jetson(saved)
        self.store.remove(self.key)

    def close(self) -> None:
        """Stop the power sampler."""
        self._meter.close()


def restore_jetson(saved: dict[str, object]) -> None:
    """Undo from a saved state file: the devfreq node's min, max and governor."""
    gpu = GpuDevfreq(Path(str(saved["node"])))
    gpu.apply(DevfreqState(int(saved["min_hz"]), int(saved["max_hz"]), str(saved["governor"])))
