"""The Device interface every hardware backend implements, the capabilities and the knobs it declares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edpilot.clock import Clock
from edpilot.errors import DeviceError, PermissionDenied


@dataclass(frozen=True)
class DeviceCapabilities:
    """What a device can do, declared once when it is opened (callers never probe with getattr)."""

    can_set_clocks: bool  # False: read-only, dry run, or no knob; set_freq_mhz never writes
    read_only_reason: str | None = None  # why not ("dry run: ...", "no permission to ...", "no clock knob")
    dry_run: bool = False  # set_freq_mhz only logs what it would set
    has_meter: bool = True  # energy_j() returns numbers (else always None)
    meter_update_interval_ms: float | None = None  # how often the meter's reading changes; None if unknown

    def __post_init__(self) -> None:
        if self.can_set_clocks and (self.read_only_reason is not None or self.dry_run):
            raise ValueError("a device that can set clocks has no read-only reason and is not a dry run")
        if not self.can_set_clocks and not self.read_only_reason:
            raise ValueError("a device that cannot set clocks must say why")


GPU_KNOB = "gpu_mhz"
EMC_KNOB = "emc_mhz"


@dataclass(frozen=True)
class Knob:
    """One clock a device declares: its name (`gpu_mhz`, `emc_mhz`), exact levels, and whether it may be turned.

    A knob that cannot be turned says why (`read_only_reason`: what to do, in one line); a knob whose levels could
    not even be read has no levels. `levels_source` names where the levels came from (a file, a table).
    """

    name: str
    unit: str
    levels: tuple[float, ...]
    writable: bool
    read_only_reason: str | None = None
    levels_source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(sorted(self.levels)))
        if self.writable and (self.read_only_reason is not None or not self.levels):
            raise ValueError(f"a writable knob {self.name} has levels and no read-only reason")
        if not self.writable and not self.read_only_reason:
            raise ValueError(f"a knob {self.name} that may not be turned must say why")

    def level(self, value: float, *, tolerance: float = 0.5) -> float:
        """The exact level within `tolerance` of `value`; DeviceError naming the nearest level otherwise."""
        if not self.levels:
            raise DeviceError(f"{self.name} has no levels: {self.read_only_reason}")
        nearest = min(self.levels, key=lambda lv: abs(lv - value))
        if not abs(nearest - value) <= tolerance:
            raise DeviceError(f"{value:g} {self.unit} is not a level of {self.name}; the nearest is {nearest:g}")
        return nearest


class HasGpuLevels(Protocol):
    """What `gpu_knob` reads of a device."""

    @property
    def capabilities(self) -> DeviceCapabilities: ...

    def freqs_mhz(self) -> tuple[float, ...]: ...


def gpu_knob(device: HasGpuLevels) -> Knob:
    """The GPU clock as a knob, from a device's levels and capabilities."""
    caps = device.capabilities
    return Knob(
        GPU_KNOB,
        "MHz",
        device.freqs_mhz(),
        writable=caps.can_set_clocks,
        read_only_reason=None if caps.can_set_clocks else caps.read_only_reason,
    )


class Device(Protocol):
    """A GPU with a frequency knob (maybe more knobs: `knobs()`) and (maybe) an energy meter.

    `energy_j()` returns None when energy could not be measured (no meter, a failed read): never a fake
    or held value. `restore()` undoes only what this device object changed.
    """

    name: str
    capabilities: DeviceCapabilities

    @property
    def clock(self) -> Clock:
        """The device's time source (read-only: a backend holds its own concrete clock)."""
        ...

    def freqs_mhz(self) -> tuple[float, ...]:
        """Selectable GPU frequency levels in MHz, ascending (exact device values); () without a knob."""
        ...

    def current_freq_mhz(self) -> float | None:
        """The GPU frequency in MHz right now, or None when it cannot be read."""
        ...

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Pin the GPU at `freq_mhz` (one of `freqs_mhz()`); a dry run only logs it."""
        ...

    def knobs(self) -> tuple[Knob, ...]:
        """Every knob this device declares, the GPU clock first."""
        ...

    def knob_level(self, name: str) -> float | None:
        """The level of knob `name` right now, or None when it cannot be read."""
        ...

    def set_knob(self, name: str, level: float) -> None:
        """Turn knob `name` to one of its levels (the original saved first); a dry run only logs it."""
        ...

    def energy_j(self) -> float | None:
        """Monotonic energy counter in joules, or None when it could not be measured."""
        ...

    def describe(self) -> dict[str, object]:
        """What the run log and `edpilot devices` show about this device."""
        ...

    def restore(self) -> None:
        """Undo every change this device made (idempotent)."""
        ...

    def close(self) -> None:
        """Stop sampler threads and release locks (idempotent)."""
        ...


def refuse_unless_settable(device: Device) -> None:
    """Raise PermissionDenied (no permission) or DeviceError (read-only) when `device` may not change clocks."""
    if device.capabilities.can_set_clocks:
        return
    reason = device.capabilities.read_only_reason
    error = PermissionDenied if str(reason).startswith("no permission") else DeviceError
    raise error(f"{device.name} may not change clocks: {reason}")
