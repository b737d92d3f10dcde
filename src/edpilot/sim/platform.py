"""The simulated device and engine: they share a virtual clock and a performance model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edpilot.clock import Clock, VirtualClock
from edpilot.engine.base import Completion
from edpilot.errors import DeviceError
from edpilot.hardware.base import Device
from edpilot.sim.model import BatchCost, PerformanceModel
from edpilot.workload import Request


class SimDevice:
    """A GPU whose clock and energy meter live in the model; idle power accrues between batches."""

    read_only = False

    def __init__(self, model: PerformanceModel, clock: VirtualClock, *, name: str) -> None:
        self.name = name
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
        self.set_freq_mhz(self._levels_mhz[-1])

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
        """Engine name."""
        return {"backend": "sim"}
