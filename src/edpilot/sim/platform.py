"""The simulated device and engine: they share a virtual clock and a performance model."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from edpilot.clock import Clock, VirtualClock
from edpilot.engine.base import Completion
from edpilot.errors import DeviceError
from edpilot.hardware.base import Device, DeviceCapabilities
from edpilot.sim.model import BatchCost, PerformanceModel
from edpilot.workload import Request

log = logging.getLogger(__name__)


class SimDevice:
    """A GPU whose clock and energy meter live in the model; idle power accrues between batches.

    `read_only` keeps it at its highest level (batch-only search, as on a GPU whose clocks may not change);
    `dry_run` logs the level it would set and stays where it is, as a real device's dry run does.
    """

    def __init__(
        self, model: PerformanceModel, clock: VirtualClock, *, name: str, read_only: bool = False, dry_run: bool = False
    ) -> None:
        self.name = name
        reason = "--read-only was given" if read_only else ("dry run: clocks are never written" if dry_run else None)
        self.capabilities = DeviceCapabilities(
            can_set_clocks=reason is None, read_only_reason=reason, dry_run=dry_run and not read_only
        )
        self.model = model
        self.clock = clock
        self._levels_mhz = tuple(sorted(model.freqs_mhz))
        self._freq_mhz = self._levels_mhz[-1]
        self._energy_j = 0.0
        self._accounted_until_s = clock.now_s()

    def freqs_mhz(self) -> tuple[float, ...]:
        """The model's frequency levels (MHz)."""
        return self._levels_mhz

    def current_freq_mhz(self) -> float:
        """The pinned frequency (MHz)."""
        return self._freq_mhz

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Pin a level; idle energy up to now is charged at the old level."""
        if freq_mhz not in self._levels_mhz:
            raise DeviceError(f"{freq_mhz:g} MHz is not a level of {self.name}")
        if self.capabilities.dry_run:
            log.info("dry run: would pin %s at %g MHz", self.name, freq_mhz)
            return
        if not self.capabilities.can_set_clocks:
            raise DeviceError(f"{self.name} is read-only: {self.capabilities.read_only_reason}")
        self._accrue_idle()
        self._freq_mhz = freq_mhz

    def energy_j(self) -> float:
        """Monotonic energy counter (J), idle time included up to the clock's now."""
        self._accrue_idle()
        return self._energy_j

    def run_batch(self, cost: BatchCost) -> None:
        """Spend a batch's service time on the clock and add its energy to the counter."""
        self._accrue_idle()
        self.clock.sleep(cost.service_s)
        self._energy_j += cost.energy_j
        self._accounted_until_s = self.clock.now_s()

    def describe(self) -> dict[str, object]:
        """Backend, levels and the model behind it."""
        return {
            "backend": "sim",
            "name": self.name,
            "freqs_mhz": list(self._levels_mhz),
            **self.model.describe(),
        }

    def restore(self) -> None:
        """Back to the highest level, the state a fresh simulated board starts in."""
        self._accrue_idle()
        self._freq_mhz = self._levels_mhz[-1]

    def close(self) -> None:
        """Nothing to release."""

    def _accrue_idle(self) -> None:
        now_s = self.clock.now_s()
        idle_s = now_s - self._accounted_until_s
        if idle_s > 0:
            self._energy_j += self.model.idle_power_w(self._freq_mhz) * idle_s
        self._accounted_until_s = now_s


class SimEngine:
    """Runs a batch as the performance model says: every request decodes exactly its max_new_tokens.

    On a SimDevice the batch's time and energy go to the virtual clock and the simulated meter; on a
    real device the engine only waits on `clock` for the modelled time (the real meter measures).
    """

    name = "sim"
    needs_warmup = False

    def __init__(self, device: Device, model: PerformanceModel, clock: Clock, rng: np.random.Generator) -> None:
        self.device, self.model, self.clock, self.rng = device, model, clock, rng

    def generate(self, batch: Sequence[Request]) -> list[Completion]:
        """Spend the batch's modelled service time; return empty completions with the modelled TTFT."""
        output_tokens = max(r.max_new_tokens for r in batch)
        cost = self.model.batch_cost(
            self.device.current_freq_mhz(), [r.prompt_tokens for r in batch], output_tokens, self.rng
        )
        if isinstance(self.device, SimDevice):
            self.device.run_batch(cost)
        else:
            self.clock.sleep_until(self.clock.now_s() + cost.service_s)
        return [Completion(text="", output_tokens=r.max_new_tokens, ttft_s=cost.ttft_s) for r in batch]

    def describe(self) -> dict[str, object]:
        """Engine backend and the model it models."""
        return {"backend": "sim", "model": self.model.describe().get("model")}

    def close(self) -> None:
        """Nothing to release."""
