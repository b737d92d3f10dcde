"""Prometheus metrics of the live server, in a registry of its own (served as text by prometheus-client)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)
TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
ITL_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class ServerMetrics:
    """Counters and gauges the server updates; `registry` is what /metrics exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "edpilot_requests", "HTTP requests answered, by endpoint and status code.", ["endpoint", "code"], registry=r
        )
        self.prompt_tokens = Counter("edpilot_prompt_tokens", "Prompt tokens of served requests.", registry=r)
        self.completion_tokens = Counter("edpilot_completion_tokens", "Tokens generated.", registry=r)
        self.energy_j = Counter("edpilot_energy_joules", "Device energy of served batches (J).", registry=r)
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
        self.freq_mhz = Gauge("edpilot_gpu_frequency_mhz", "GPU frequency being served at (MHz).", registry=r)
        self.batch_size = Gauge("edpilot_batch_size", "Static batch size being served at.", registry=r)
        self.queue_depth = Gauge("edpilot_queue_depth", "Requests waiting for a batch.", registry=r)
        self.edp = Gauge(
            "edpilot_observed_edp_joule_seconds", "EDP of the last measured round (J·s; NaN: no meter).", registry=r
        )
        self.energy_per_request_j = Gauge(
            "edpilot_observed_energy_per_request_joules", "Energy per request of the last round (J).", registry=r
        )
        self.rounds = Counter("edpilot_rounds", "Measurement rounds recorded.", registry=r)
        self.retunes = Counter("edpilot_retunes", "Re-plans after the live traffic drifted.", registry=r)
        self.arrival_rate = Gauge(
            "edpilot_estimated_arrival_rate_per_second", "Arrival rate estimated from live traffic.", registry=r
        )
