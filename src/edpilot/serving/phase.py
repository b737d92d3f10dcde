"""Per-phase clocks: a batch's prefill at one set of knob levels, its decode at another (`--phase-clocks`).

    switch = phase_switch(device, clock, prefill={"gpu_mhz": 1300.5}, decode={"gpu_mhz": 624.75})
    engine.generate(batch, on_decode=switch.on_decode)   # the engine calls it at the first decode step
    switch.end_batch()                                   # prefill levels back before the next batch

Every write is timed on the clock (`switch_s`), and both switches happen inside the batch, so a measured
batch's time and energy count them. Continuous batching mixes phases in one step and has no such boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from edpilot.clock import Clock
from edpilot.errors import ConfigError
from edpilot.hardware.base import Device

log = logging.getLogger(__name__)


class PhaseSwitch:
    """Writes a batch's decode levels at its first decode step and its prefill levels back when it ends.

    Only the knobs whose decode level differs from the prefill level are written; a decode knob without a
    prefill level is switched back to the level the device held when the switch was made.
    """

    def __init__(
        self, device: Device, clock: Clock, *, prefill: Mapping[str, float], decode: Mapping[str, float]
    ) -> None:
        known = {k.name for k in device.knobs()}
        unknown = sorted(set(decode) - known)
        if unknown:
            raise ConfigError(f"--phase-clocks: {device.name} has no knob {', '.join(unknown)}")
        self.device, self.clock = device, clock
        self.prefill: dict[str, float] = {}
        for name in decode:
            level = prefill[name] if name in prefill else device.knob_level(name)
            if level is None:
                raise ConfigError(f"--phase-clocks: {device.name} cannot read {name}, so it could not be set back")
            self.prefill[name] = level
        self.decode = {name: level for name, level in decode.items() if self.prefill[name] != level}
        self.switch_s = 0.0  # time spent writing levels, both directions, every batch (s)
        self.switches = 0  # batches whose decode ran at other levels than their prefill
        self._decoding = False

    def on_decode(self) -> None:
        """The engine's hook: write the decode levels (nothing when they equal the prefill's)."""
        if not self.decode or self._decoding:
            return
        self._write(self.decode)
        self._decoding = True
        self.switches += 1

    def end_batch(self) -> None:
        """Put the prefill levels back after a batch whose decode switched; idempotent."""
        if self._decoding:
            self._decoding = False
            self._write({name: self.prefill[name] for name in self.decode})

    def _write(self, levels: Mapping[str, float]) -> None:
        start_s = self.clock.now_s()
        for name, level in levels.items():
            self.device.set_knob(name, level)
        took_s = self.clock.now_s() - start_s
        self.switch_s += took_s
        log.debug("set %s in %.2f ms", levels, 1e3 * took_s)


def phase_switch(
    device: Device, clock: Clock, *, prefill: Mapping[str, float], decode: Mapping[str, float]
) -> PhaseSwitch | None:
    """The switch for a config's prefill and decode levels; None when it has no decode levels (one for both)."""
    return PhaseSwitch(device, clock, prefill=prefill, decode=decode) if decode else None
