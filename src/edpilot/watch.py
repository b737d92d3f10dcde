"""Readings for `edpilot top`: a device's clocks, governor, power and energy counter, and a server's state.

Everything here only reads: no clock, governor or file is ever written. A value that cannot be read is None
in that reading — never the previous reading held over, never 0.

    reader = DeviceReader(device)
    reading = reader.read()     # reading.knobs ({"gpu_mhz": ..., "emc_mhz": ...}), .governor, .gpu_load_pct,
                                # .power_w, .rails_w, .energy_j
    status = read_server("http://127.0.0.1:8000")   # status.values["round"], ..., or status.error
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import httpx

from edpilot.clock import unix_time_s
from edpilot.errors import DeviceError, EdpilotError
from edpilot.hardware.base import Device
from edpilot.hardware.jetson import JetsonDevice
from edpilot.hardware.nvml import NvmlDevice
from edpilot.hardware.sysfs import read_attr

log = logging.getLogger(__name__)

# What `top --url` shows of a server, from its Prometheus /metrics: column name -> metric sample name.
SERVER_METRICS: dict[str, str] = {
    "round": "edpilot_rounds_total",
    "freq_mhz": "edpilot_gpu_frequency_mhz",
    "batch_size": "edpilot_batch_size",
    "queue": "edpilot_queue_depth",
    "edp_js": "edpilot_observed_edp_joule_seconds",
    "arrival_rate_per_s": "edpilot_estimated_arrival_rate_per_second",
}
SERVER_TIMEOUT_S = 2.0
T = TypeVar("T")


@dataclass(frozen=True)
class Reading:
    """One look at a device: unix time (s), every knob's level (MHz, by knob name), governor, power (W), energy (J)."""

    time_s: float
    knobs: dict[str, float | None]
    governor: str | None
    gpu_load_pct: float | None
    rails_w: dict[str, float | None]
    energy_j: float | None
    power_w: float | None = None  # mean since the previous reading, from the energy counter


class DeviceReader:
    """Reads a device without changing it; `read()` gives the mean power since its previous call."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self._previous: tuple[float, float] | None = None  # (device clock s, energy J) of the last good reading
        self.knobs = tuple(knob.name for knob in device.knobs())  # the knobs the device declares, e.g. gpu_mhz

    @property
    def rails(self) -> tuple[str, ...]:
        """The power rails each reading has, in order (`board` for an NVIDIA GPU's board power)."""
        if isinstance(self.device, JetsonDevice):
            return tuple(r.label for r in self.device.rails.rails)
        if isinstance(self.device, NvmlDevice):
            return ("board",)
        return ()

    def read(self) -> Reading:
        """Read everything once; each value that fails is None on its own."""
        device = self.device
        now_s = device.clock.now_s()
        energy_j = _try(device.energy_j)
        power_w = None
        if energy_j is not None and self._previous is not None and now_s > self._previous[0]:
            power_w = (energy_j - self._previous[1]) / (now_s - self._previous[0])
        self._previous = None if energy_j is None else (now_s, energy_j)
        return Reading(
            time_s=unix_time_s(),
            knobs={name: _try(partial(device.knob_level, name)) for name in self.knobs},
            governor=_try(self._governor),
            gpu_load_pct=_try(self._gpu_load_pct),
            rails_w=self._rails_w(),
            energy_j=energy_j,
            power_w=power_w,
        )

    def _governor(self) -> str | None:
        if isinstance(self.device, JetsonDevice):
            return read_attr(self.device.gpu.node / "governor")
        return None

    def _gpu_load_pct(self) -> float | None:
        return self.device.gpu_load_pct() if isinstance(self.device, JetsonDevice) else None

    def _rails_w(self) -> dict[str, float | None]:
        device = self.device
        if isinstance(device, JetsonDevice):
            return {r.label: _try(r.power_w) for r in device.rails.rails}
        if isinstance(device, NvmlDevice):
            return {"board": _try(device.power_w)}
        return {}


@dataclass(frozen=True)
class ServerStatus:
    """A server's state from its /metrics (None for what it did not report yet); `error` when it could not be read."""

    values: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None


def read_server(url: str, *, api_key: str | None = None, client: httpx.Client | None = None) -> ServerStatus:
    """The round, config, queue, EDP and arrival rate a running `edpilot serve` exports on /metrics."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise EdpilotError("reading a server needs prometheus-client: pip install 'edpilot[serve]'") from None
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        get = client.get if client is not None else httpx.get
        response = get(f"{url.rstrip('/')}/metrics", headers=headers, timeout=SERVER_TIMEOUT_S)
        response.raise_for_status()
        samples = {s.name: s.value for f in text_string_to_metric_families(response.text) for s in f.samples}
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        return ServerStatus(error=f"{url}: {exc}")
    values: dict[str, float | None] = {}
    for column, metric in SERVER_METRICS.items():
        value = samples.get(metric)
        values[column] = None if value is None or not math.isfinite(value) else float(value)
    if not values["round"]:  # a gauge reads 0 until it is first set: that 0 is not a measurement
        values["edp_js"] = None
    if not values["arrival_rate_per_s"]:
        values["arrival_rate_per_s"] = None
    return ServerStatus(values=values)


def _try(read: Callable[[], T | None]) -> T | None:
    try:
        return read()
    except (DeviceError, OSError, ValueError) as exc:  # ValueError: a file that does not hold a number
        log.debug("reading failed: %s", exc)
        return None
