"""The simulated device and engine: they share a virtual clock and a performance model."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from edpilot.clock import Clock, ScaledClock, VirtualClock
from edpilot.engine.base import Completion
from edpilot.errors import DeviceError
from edpilot.hardware.base import EMC_KNOB, GPU_KNOB, Device, DeviceCapabilities, Knob, gpu_knob
from edpilot.sim.model import BatchCost, EmcView, PerformanceModel
from edpilot.workload import Request

log = logging.getLogger(__name__)


class SimDevice:
    """A GPU whose clock and energy meter live in the model; idle power accrues between batches.

    `read_only` keeps it at its highest level (batch-only search, as on a GPU whose clocks may not change);
    `dry_run` logs the level it would set and stays where it is, as a real device's dry run does.
    """

    def __init__(
        self,
        model: PerformanceModel,
        clock: VirtualClock | ScaledClock,
        *,
        name: str,
        read_only: bool = False,
        dry_run: bool = False,
        emc: EmcView | None = None,
    ) -> None:
        self.name = name
        self.emc = emc  # the memory clock knob (`emc_mhz`): the model seen at the level it holds
        reason = "--read-only was given" if read_only else ("dry run: clocks are never written" if dry_run else None)
        self.capabilities = DeviceCapabilities(
            can_set_clocks=reason is None,
            read_only_reason=reason,
            dry_run=dry_run and not read_only,
            has_meter=model.has_energy,
            meter_update_interval_ms=None,
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

    def energy_j(self) -> float | None:
        """Monotonic energy counter (J), idle time included up to the clock's now; None for a latency-only model."""
        if not self.capabilities.has_meter:
            return None
        self._accrue_idle()
        return self._energy_j

    def run_batch(self, cost: BatchCost) -> None:
        """Spend a batch's service time on the clock and add its energy to the counter."""
        self._accrue_idle()
        self.clock.sleep(cost.service_s)
        self._energy_j += cost.energy_j or 0.0
        self._accounted_until_s = self.clock.now_s()

    def describe(self) -> dict[str, object]:
        """Backend, levels and the model behind it."""
        return {
            "backend": "sim",
            "name": self.name,
            "freqs_mhz": list(self._levels_mhz),
            **(
                {}
                if self.emc is None
                else {"emc_levels_mhz": list(self.emc.emc_levels_mhz), "emc_mhz": self.emc.emc_mhz}
            ),
            **self.model.describe(),
        }

    def restore(self) -> None:
        """Back to the highest levels, the state a fresh simulated board starts in."""
        self._accrue_idle()
        self._freq_mhz = self._levels_mhz[-1]
        if self.emc is not None:
            self.emc.emc_mhz = self.emc.emc_levels_mhz[-1]

    @property
    def priced_model(self) -> PerformanceModel:
        """The model that prices batches and idle time: at the memory clock's level where the board has one."""
        return self.emc if self.emc is not None else self.model

    def knobs(self) -> tuple[Knob, ...]:
        """The GPU clock, and the memory clock where the model has one."""
        if self.emc is None:
            return (gpu_knob(self),)
        caps = self.capabilities
        reason = None if caps.can_set_clocks else caps.read_only_reason
        emc = Knob(EMC_KNOB, "MHz", self.emc.emc_levels_mhz, writable=reason is None, read_only_reason=reason)
        return gpu_knob(self), emc

    def knob_level(self, name: str) -> float | None:
        """The level a knob holds (MHz)."""
        if name == GPU_KNOB:
            return self._freq_mhz
        if name == EMC_KNOB and self.emc is not None:
            return self.emc.emc_mhz
        raise DeviceError(f"{self.name} has no knob {name!r}")

    def set_knob(self, name: str, level: float) -> None:
        """Pin the GPU (as set_freq_mhz) or the memory clock; idle energy up to now is charged at the old level."""
        if name == GPU_KNOB or self.emc is None:
            if name != GPU_KNOB:
                raise DeviceError(f"{self.name} has no knob {name!r}")
            self.set_freq_mhz(level)
            return
        if name != EMC_KNOB:
            raise DeviceError(f"{self.name} has no knob {name!r}")
        if level not in self.emc.emc_levels_mhz:
            raise DeviceError(f"{level:g} MHz is not a memory clock level of {self.name}")
        if self.capabilities.dry_run:
            log.info("dry run: would pin %s memory clock at %g MHz", self.name, level)
            return
        if not self.capabilities.can_set_clocks:
            raise DeviceError(f"{self.name} is read-only: {self.capabilities.read_only_reason}")
        self._accrue_idle()
        self.emc.emc_mhz = level

    def close(self) -> None:
        """Nothing to release."""

    def _accrue_idle(self) -> None:
        now_s = self.clock.now_s()
        idle_s = now_s - self._accounted_until_s
        if idle_s > 0 and self.capabilities.has_meter:
            self._energy_j += self.priced_model.idle_power_w(self._freq_mhz) * idle_s
        self._accounted_until_s = now_s


class SimEngine:
    """Runs a batch as the performance model says: every request decodes exactly its max_new_tokens.

    On a SimDevice the batch's time and energy go to the virtual clock and the simulated meter; on a
    real device the engine only waits on `clock` for the modelled time (the real meter measures).
    `filler_text` answers each request with its prompt's words repeated to its output length (the live
    server's sim engine: an answer that shows which prompt it belongs to); otherwise the text is empty.
    """

    name = "sim"
    needs_warmup = False

    def __init__(
        self,
        device: Device,
        model: PerformanceModel,
        clock: Clock,
        rng: np.random.Generator,
        *,
        filler_text: bool = False,
    ) -> None:
        self.device, self.model, self.clock, self.rng = device, model, clock, rng
        self.filler_text = filler_text

    def generate(self, batch: Sequence[Request]) -> list[Completion]:
        """Spend the batch's modelled service time; return empty completions with the modelled TTFT."""
        output_tokens = max(r.max_new_tokens for r in batch)
        freq_mhz = self.device.current_freq_mhz()
        if freq_mhz is None:  # a device without a clock (cpu): the modelled board at its highest level
            freq_mhz = max(self.model.freqs_mhz)
        cost = self.model.batch_cost(freq_mhz, [r.prompt_tokens for r in batch], output_tokens, self.rng)
        if isinstance(self.device, SimDevice):
            self.device.run_batch(cost)
        else:
            self.clock.sleep_until(self.clock.now_s() + cost.service_s)
        return [
            Completion(
                text=filler_text(r.prompt, r.max_new_tokens) if self.filler_text else "",
                output_tokens=r.max_new_tokens,
                ttft_s=cost.ttft_s,
            )
            for r in batch
        ]

    def describe(self) -> dict[str, object]:
        """Engine backend and the model it models."""
        return {"backend": "sim", "model": self.model.describe().get("model")}

    def close(self) -> None:
        """Nothing to release."""


def filler_text(prompt: str, tokens: int) -> str:
    """`tokens` words cycled from `prompt` (a word counts as one token), e.g. ("a b", 3) -> "a b a"."""
    words = prompt.split() or ["_"]
    return " ".join(words[i % len(words)] for i in range(tokens))
