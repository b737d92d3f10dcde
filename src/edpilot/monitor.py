"""Measure the energy of a block of code on any device: named windows, per-rail energy where the board has rails.

    with edpilot.open_device("jetson", read_only=True) as device:
        monitor = edpilot.EnergyMonitor(device)
        monitor.begin_window("prefill")
        ...
        m = monitor.end_window("prefill")         # m.energy_j, m.duration_s, m.rail_energy_j, m.meter_updates
        with monitor.window("decode") as w:
            ...
        w.energy_j, w.missing                     # what could not be measured is None, and `missing` says why

Windows are named by the caller and may overlap. Each is an `EnergyWindow` over the device's meter (and, on a
Jetson, one sampled meter per INA3221 rail), so a reading that failed or a meter that did not advance is None,
never a held value or 0; so is a window shorter than one update of the meter (NVML: ~100 ms; the INA3221
averages each reading over ~430 ms), whose energy cannot be told from its neighbours'. `sync` (e.g.
`torch.cuda.synchronize`) runs before each window's start and end reading.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

from edpilot.errors import ConfigError, DeviceError
from edpilot.hardware.base import Device
from edpilot.hardware.jetson import JetsonDevice
from edpilot.hardware.meter import SampledEnergyMeter
from edpilot.serving.window import EnergyWindow

log = logging.getLogger(__name__)

RAIL_SAMPLE_INTERVAL_S = 0.02  # as the Jetson device samples its total
MIN_METER_UPDATES = 1.0  # a window shorter than one meter update has no energy of its own


@dataclass(frozen=True)
class Measurement:
    """One closed window: seconds, joules (total and per rail) and meter updates; `missing` says why a value is None.

    `rail_energy_j` maps each rail's label to its joules (None: that rail could not be measured); it is empty on a
    device without rails, and `missing["rail_energy_j"]` says so. `meter_updates` is how many updates of the
    device's meter the window spans (None when the meter's update interval is unknown).
    """

    name: str
    duration_s: float
    energy_j: float | None
    rail_energy_j: dict[str, float | None]
    meter_updates: float | None
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def power_w(self) -> float | None:
        """Mean power over the window (W), or None when the energy or the duration is missing."""
        if self.energy_j is None or self.duration_s <= 0:
            return None
        return self.energy_j / self.duration_s


class WindowHandle:
    """What `with monitor.window(name) as w:` gives: the window's `Measurement` once the block has ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.measurement: Measurement | None = None

    def _closed(self) -> Measurement:
        if self.measurement is None:
            raise RuntimeError(f"window {self.name!r} is still open: read it after the with block")
        return self.measurement

    @property
    def energy_j(self) -> float | None:
        """Joules over the window (None: not measured; see `missing`)."""
        return self._closed().energy_j

    @property
    def duration_s(self) -> float:
        """Seconds from begin to end."""
        return self._closed().duration_s

    @property
    def rail_energy_j(self) -> dict[str, float | None]:
        """Joules per rail by label ({} on a device without rails)."""
        return self._closed().rail_energy_j

    @property
    def meter_updates(self) -> float | None:
        """Meter updates the window spans (None: update interval unknown)."""
        return self._closed().meter_updates

    @property
    def missing(self) -> dict[str, str]:
        """Why each missing value is missing, by field name (`rail_energy_j[VDD_CPU_CV]` for one rail)."""
        return self._closed().missing

    @property
    def power_w(self) -> float | None:
        """Mean power over the window (W)."""
        return self._closed().power_w


@dataclass
class _Open:
    total: EnergyWindow
    rails: dict[str, EnergyWindow]


class EnergyMonitor:
    """Named energy windows on one device (jetson, nvml, cpu, sim); close() stops the per-rail samplers."""

    def __init__(self, device: Device, *, sync: Callable[[], None] | None = None) -> None:
        self.device = device
        self.sync = sync
        self._open: dict[str, _Open] = {}
        self._rail_meters: dict[str, SampledEnergyMeter | None] = {}
        self._rail_failures: dict[str, str] = {}
        if isinstance(device, JetsonDevice):
            for rail in device.rails.rails:
                try:
                    self._rail_meters[rail.label] = SampledEnergyMeter(
                        rail.power_w, interval_s=RAIL_SAMPLE_INTERVAL_S, what=f"rail {rail.label}"
                    )
                except DeviceError as exc:
                    log.warning("rail %s cannot be read: its energy is missing (%s)", rail.label, exc)
                    self._rail_meters[rail.label] = None
                    self._rail_failures[rail.label] = str(exc)

    @property
    def rails(self) -> tuple[str, ...]:
        """Labels of the rails measured one by one (empty on a device without rails)."""
        return tuple(self._rail_meters)

    def begin_window(self, name: str) -> None:
        """Start the window `name` (ConfigError if one of that name is open)."""
        if name in self._open:
            raise ConfigError(f"a window named {name!r} is already open; end it first or choose another name")
        if self.sync is not None:
            self.sync()
        interval_ms = self.device.capabilities.meter_update_interval_ms
        rails = {
            label: EnergyWindow(meter, self.device.clock, update_interval_ms=interval_ms).begin()
            for label, meter in self._rail_meters.items()
            if meter is not None
        }
        total = EnergyWindow(self.device, self.device.clock, update_interval_ms=interval_ms).begin()
        self._open[name] = _Open(total, rails)

    def end_window(self, name: str) -> Measurement:
        """End the window `name` and return what it measured (ConfigError if no window of that name is open)."""
        if name not in self._open:
            open_names = ", ".join(repr(n) for n in self._open) or "none"
            raise ConfigError(f"no window named {name!r} is open (open: {open_names})")
        if self.sync is not None:
            self.sync()
        opened = self._open.pop(name)
        total = opened.total.end()
        for rail_window in opened.rails.values():
            rail_window.end()
        missing: dict[str, str] = {}
        too_short = self._too_short(total)
        energy_j = None if too_short else total.energy_j
        if energy_j is None:
            missing["energy_j"] = too_short or self._why_missing(total)
        if total.meter_updates is None:
            missing["meter_updates"] = f"{self.device.name} does not say how often its meter updates"
        rail_energy_j: dict[str, float | None] = {}
        for label, meter in self._rail_meters.items():
            rail = opened.rails.get(label)
            rail_energy_j[label] = None if rail is None or too_short else rail.energy_j
            if rail_energy_j[label] is None:
                missing[f"rail_energy_j[{label}]"] = too_short or self._why_rail_missing(label, meter, rail)
        if not self._rail_meters:
            missing["rail_energy_j"] = f"{self.device.name} has no per-rail power monitors"
        return Measurement(
            name=name,
            duration_s=total.duration_s,
            energy_j=energy_j,
            rail_energy_j=rail_energy_j,
            meter_updates=total.meter_updates,
            missing=missing,
        )

    @contextmanager
    def window(self, name: str = "window") -> Iterator[WindowHandle]:
        """`with monitor.window("decode") as w:` ... then `w.energy_j`; an exception in the block drops the window."""
        handle = WindowHandle(name)
        self.begin_window(name)
        try:
            yield handle
        except BaseException:
            self._open.pop(name, None)
            raise
        handle.measurement = self.end_window(name)

    def close(self) -> None:
        """Stop the per-rail samplers (the device stays open: its owner closes it)."""
        for meter in self._rail_meters.values():
            if meter is not None:
                meter.close()

    def __enter__(self) -> EnergyMonitor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _too_short(self, window: EnergyWindow) -> str | None:
        """Why a window shorter than one meter update has no energy (its reading cannot be told apart), or None."""
        updates = window.meter_updates
        if updates is None or updates >= MIN_METER_UPDATES:
            return None
        interval_ms = self.device.capabilities.meter_update_interval_ms
        return (
            f"the window ({window.duration_s:.3g} s) is shorter than one update of the meter of {self.device.name} "
            f"(every {interval_ms:g} ms): its energy cannot be told apart; make the window longer"
        )

    def _why_missing(self, window: EnergyWindow) -> str:
        caps = self.device.capabilities
        if not caps.has_meter:
            return f"{self.device.name} has no energy meter"
        interval = caps.meter_update_interval_ms
        hint = f" (it updates every {interval:g} ms; make the window longer)" if interval else ""
        what = f"the meter of {self.device.name} could not be read, or did not advance"
        return f"{what} over {window.duration_s:.3g} s{hint}"

    def _why_rail_missing(self, label: str, meter: SampledEnergyMeter | None, window: EnergyWindow | None) -> str:
        if meter is None:
            return f"rail {label} could not be read when the monitor started: {self._rail_failures[label]}"
        if meter.failure is not None:
            return f"a reading of rail {label} failed: {meter.failure}"
        return f"rail {label} did not advance over {window.duration_s if window else 0:.3g} s"
