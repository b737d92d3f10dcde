"""The board's own power, for /metrics: a joule counter per power rail and the board's power now.

On a Jetson every INA3221 rail gets its own sampled joule counter (`edpilot_rail_energy_joules_total{rail}`,
a counter: Prometheus takes `rate()` of it) and the board power is the sum of the rails that make the total;
on an NVML GPU the board power is NVML's reading. A device without such monitors (sim, cpu) exports neither,
and a rail whose reading failed leaves the output from then on, rather than hold a value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from edpilot.errors import DeviceError
from edpilot.hardware.base import Device
from edpilot.hardware.jetson import JetsonDevice
from edpilot.hardware.meter import SampledEnergyMeter
from edpilot.hardware.nvml import NvmlDevice

log = logging.getLogger(__name__)

RAIL_SAMPLE_INTERVAL_S = 0.1  # the INA3221 averages each reading over ~430 ms on stock JetPack
RAIL_ENERGY = "edpilot_rail_energy_joules"
BOARD_POWER = "edpilot_board_power_watts"


class BoardMetrics(Collector):
    """Per-rail joule counters and board power of `device`, collected at each scrape; `close()` stops the samplers."""

    def __init__(self, device: Device, *, registry: CollectorRegistry) -> None:
        self._meters: dict[str, SampledEnergyMeter] = {}
        self._power_w: Callable[[], float] | None = None
        if isinstance(device, JetsonDevice):
            self._power_w = device.rails.power_w
            for rail in device.rails.rails:
                try:
                    self._meters[rail.label] = SampledEnergyMeter(
                        rail.power_w, interval_s=RAIL_SAMPLE_INTERVAL_S, what=f"rail {rail.label}"
                    )
                except DeviceError as exc:
                    log.warning("rail %s cannot be read; its energy is left out of /metrics: %s", rail.label, exc)
        elif isinstance(device, NvmlDevice):
            self._power_w = device.power_w
        registry.register(self)

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(RAIL_ENERGY, "", labels=["rail"])
        yield GaugeMetricFamily(BOARD_POWER, "")

    def collect(self) -> Iterator[Metric]:
        rails = CounterMetricFamily(
            RAIL_ENERGY, "Energy through each power rail since the server started (J).", labels=["rail"]
        )
        for label, meter in self._meters.items():
            energy_j = meter.energy_j()
            if energy_j is not None:
                rails.add_metric([label], energy_j)
        if rails.samples:
            yield rails
        power_w = self._read_power_w()
        if power_w is not None:
            yield GaugeMetricFamily(BOARD_POWER, "Board power now, over the rails that make the total (W).", power_w)

    def close(self) -> None:
        """Stop the rail samplers."""
        for meter in self._meters.values():
            meter.close()

    def _read_power_w(self) -> float | None:
        if self._power_w is None:
            return None
        try:
            return self._power_w()
        except DeviceError as exc:
            log.warning("board power left out of /metrics: %s", exc)
            return None
