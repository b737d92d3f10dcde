"""Prometheus metrics of the live server, in a registry of its own (served as text by prometheus-client).

A value that was never measured is left out of /metrics, never shown as 0: the GPU frequency on a device
without a clock, the observed EDP before the first round (or without a meter), the arrival rate before the
first estimate, the energy counter of a device without a meter.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)
TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
ITL_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class OptionalGauge(Collector):
    """A gauge with no sample until it is set; `set(None)` takes the sample away again (not measured)."""

    def __init__(self, name: str, documentation: str, *, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.value: float | None = None
        registry.register(self)

    def set(self, value: float | None) -> None:
        """The present value, or None when it is not known."""
        self.value = value

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        value = self.value
        if value is not None:
            yield GaugeMetricFamily(self.name, self.documentation, value=value)


class ServerMetrics:
    """Counters and gauges the server updates; `registry` is what /metrics exposes."""

    def __init__(self, *, has_meter: bool = True) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "edpilot_requests",
            "HTTP requests answered, by route template (unknown paths: 'unmatched') and status code.",
            ["endpoint", "code"],
            registry=r,
        )
        self.prompt_tokens = Counter("edpilot_prompt_tokens", "Prompt tokens of served requests.", registry=r)
        self.completion_tokens = Counter("edpilot_completion_tokens", "Tokens generated.", registry=r)
        self.energy_j = Counter(
            "edpilot_energy_joules",
            "Device energy of served batches (J).",
            registry=r if has_meter else CollectorRegistry(),  # no meter: not exported (never a 0)
        )
        self.batches = Counter("edpilot_batches", "Batches run on the engine.", registry=r)
        self.dropped = Counter("edpilot_dropped_requests", "Requests whose client went away.", registry=r)
        self.latency_s = Histogram(
            "edpilot_request_latency_seconds",
            "Arrival to answer, on the device's clock (simulated seconds on the simulator).",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.ttft_s = Histogram(
            "edpilot_time_to_first_token_seconds",
            "Arrival to the first streamed token, on the device's clock.",
            buckets=TTFT_BUCKETS_S,
            registry=r,
        )
        self.itl_s = Histogram(
            "edpilot_inter_token_latency_seconds",
            "Time between consecutive tokens of one request, on the device's clock.",
            buckets=ITL_BUCKETS_S,
            registry=r,
        )
        self.freq_mhz = OptionalGauge(
            "edpilot_gpu_frequency_mhz", "GPU frequency being served at (MHz); absent without a clock.", registry=r
        )
        self.batch_size = Gauge("edpilot_batch_size", "Static batch size being served at.", registry=r)
        self.queue_depth = Gauge("edpilot_queue_depth", "Requests waiting for a batch.", registry=r)
        self.edp = OptionalGauge(
            "edpilot_observed_edp_joule_seconds",
            "EDP of the last measured round (J·s); absent before the first round and without a meter.",
            registry=r,
        )
        self.energy_per_request_j = OptionalGauge(
            "edpilot_observed_energy_per_request_joules",
            "Energy per request of the last round (J); absent before the first round and without a meter.",
            registry=r,
        )
        self.rounds = Counter("edpilot_rounds", "Measurement rounds recorded.", registry=r)
        self.retunes = Counter("edpilot_retunes", "Re-plans after the live traffic drifted.", registry=r)
        self.overloaded = Gauge(
            "edpilot_overloaded",
            "1 while every config falls behind the arrival rate (the highest-throughput one is served).",
            registry=r,
        )
        self.constraint_met = Gauge(
            "edpilot_constraint_met",
            "1 when the chosen config's windows meet the constraint (slo_p95_s, power_cap_w), 0 when not.",
            ["constraint"],
            registry=r,
        )
        self.arrival_rate = OptionalGauge(
            "edpilot_estimated_arrival_rate_per_second",
            "Arrival rate estimated from live traffic; absent before the first estimate.",
            registry=r,
        )
