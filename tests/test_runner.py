"""The runner's static batching against an independent exact queue computation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edpilot.runner import Runner, serve_window
from edpilot.serving import StaticBatcher
from edpilot.space import Config
from edpilot.workload import Request, Workload, arrival_times_s


def exact_queue(arrivals_s: np.ndarray, batch_size: int, service_s: float) -> tuple[np.ndarray, int]:
    """Lindley recursion for static batches: start = max(previous end, last arrival of the batch)."""
    ends = np.empty_like(arrivals_s)
    end = 0.0
    batches = 0
    for i in range(0, len(arrivals_s), batch_size):
        stop = min(i + batch_size, len(arrivals_s))
        end = max(end, arrivals_s[stop - 1]) + service_s
        ends[i:stop] = end
        batches += 1
    return ends, batches


@pytest.mark.parametrize("arrivals", ["uniform", "poisson"])
@pytest.mark.parametrize("batch_size", [1, 4, 7])
@pytest.mark.parametrize("scope", ["total", "active"])
def test_runner_edp_matches_exact_queue(linear_platform, arrivals, batch_size, scope):
    device, engine, clock, model = linear_platform()
    rate = 2.0
    workload = Workload(arrivals=arrivals, rate_per_s=rate, output_tokens=8, prompt_tokens=16)
    runner = Runner(
        device=device,
        engine=engine,
        workload=workload,
        requests_per_round=40,
        energy_scope=scope,
        seed=3,
        drop_behind=False,  # the whole window, even where b = 1 cannot keep up
    )
    clock.sleep(10.0)  # the window does not start at t = 0
    obs = runner.measure(Config.of(batch_size, gpu_mhz=1000.0))

    n = runner.window_requests(batch_size)
    arrivals_s = arrival_times_s(arrivals, rate_per_s=rate, count=n, rng=np.random.default_rng(3))
    s = model.service_s(batch_size)
    ends, batches = exact_queue(arrivals_s, batch_size, s)
    latency = ends - arrivals_s
    window_s = ends[-1]
    active_j = batches * s * model.active_w
    total_j = active_j + model.idle_w * (window_s - batches * s)
    energy_per_request = (total_j if scope == "total" else active_j) / n

    assert obs.requests == n
    assert obs.mean_latency_s == pytest.approx(latency.mean(), rel=1e-9)
    assert obs.p95_latency_s == pytest.approx(np.percentile(latency, 95), rel=1e-9)
    assert obs.energy_per_request_j == pytest.approx(energy_per_request, rel=1e-9)
    assert obs.edp == pytest.approx(energy_per_request * latency.mean(), rel=1e-9)
    assert obs.mean_batch_s == pytest.approx(s)
    assert obs.window_s == pytest.approx(window_s)
    assert obs.power_w == pytest.approx(total_j / window_s)


@pytest.mark.parametrize("batch_size", [1, 4, 8, 16])
def test_uniform_mean_wait_is_b_minus_1_over_2_lambda(linear_platform, batch_size):
    device, engine, clock, model = linear_platform(base_s=0.2, per_request_s=0.01)
    rate = 1.0
    runner = Runner(device=device, engine=engine, workload=Workload(rate_per_s=rate), requests_per_round=64)
    obs = runner.measure(Config.of(batch_size, gpu_mhz=500.0))
    assert obs.keeps_up
    assert obs.mean_latency_s - model.service_s(batch_size) == pytest.approx((batch_size - 1) / (2 * rate), rel=1e-9)


def test_overloaded_config_is_flagged_and_latency_grows_with_window(linear_platform):
    device, engine, clock, model = linear_platform(base_s=3.0, per_request_s=0.5)  # b=4: 5 s per 4 s of arrivals
    latencies = []
    for requests in (32, 128):
        runner = Runner(
            device=device,
            engine=engine,
            workload=Workload(rate_per_s=1.0),
            requests_per_round=requests,
            drop_behind=False,
        )
        obs = runner.measure(Config.of(4, gpu_mhz=500.0))
        assert not obs.keeps_up
        latencies.append(obs.mean_latency_s)
    assert latencies[1] > 2 * latencies[0]


def test_a_config_that_cannot_keep_up_falls_further_behind_round_after_round(linear_platform):
    """The queue carries over: each round inherits the last one's backlog, so it grows and latency with it."""
    device, engine, clock, model = linear_platform(base_s=3.0, per_request_s=0.5)  # b=4: 5 s per 4 s of arrivals
    runner = Runner(
        device=device, engine=engine, workload=Workload(rate_per_s=1.0), requests_per_round=32, drop_behind=False
    )
    rounds = [runner.measure(Config.of(4, gpu_mhz=500.0)) for _ in range(4)]
    backlogs = [r.backlog_requests for r in rounds]
    latencies = [r.mean_latency_s for r in rounds]
    assert all(not r.keeps_up for r in rounds)
    assert all(later > earlier for earlier, later in zip(backlogs, backlogs[1:]))
    assert all(later > earlier + 5.0 for earlier, later in zip(latencies, latencies[1:]))
    # 32 requests = 8 batches of 5 s per round while 40 more arrive: 8 more queued each round
    assert backlogs[-1] - backlogs[0] == pytest.approx(3 * 8, abs=1)


def test_a_round_that_falls_behind_is_dropped_at_the_next_batch_boundary(linear_platform):
    device, engine, clock, model = linear_platform(base_s=3.0, per_request_s=0.5)  # b=4: 5 s per 4 s of arrivals
    runner = Runner(device=device, engine=engine, workload=Workload(rate_per_s=1.0), requests_per_round=32)
    obs = runner.measure(Config.of(4, gpu_mhz=500.0))
    assert obs.requests == 2 * 4  # two batches show it, then the round ends
    assert not obs.keeps_up
    ok = runner.measure(Config.of(16, gpu_mhz=500.0))  # 11 s per 16 s of arrivals: a full round
    assert ok.requests == 32 and ok.keeps_up


def test_the_backlog_passes_to_the_next_config_at_a_batch_boundary(linear_platform):
    """Rounds are contiguous: every request of the stream is served once, in order, across a config change."""
    device, engine, clock, model = linear_platform(base_s=3.0, per_request_s=0.5)
    runner = Runner(
        device=device, engine=engine, workload=Workload(rate_per_s=1.0), requests_per_round=8, drop_behind=False
    )
    behind = runner.measure(Config.of(2, gpu_mhz=500.0))  # 4 s per 2 s of arrivals: falls behind
    assert not behind.keeps_up and behind.backlog_requests and behind.backlog_requests >= 2
    end_behind_s = clock.now_s()
    fast = runner.measure(Config.of(8, gpu_mhz=500.0))  # 7 s per 8 s of arrivals: drains
    assert fast.window_s == pytest.approx(clock.now_s() - end_behind_s)  # no gap between rounds
    # the inherited requests waited through the previous round: the first round's latency is below this one's
    assert fast.mean_latency_s > model.service_s(8)
    drained = [runner.measure(Config.of(8, gpu_mhz=500.0)) for _ in range(6)]
    assert drained[-1].backlog_requests is not None and drained[-1].backlog_requests < 8
    assert drained[-1].keeps_up


def test_a_probe_serves_only_its_batches_and_leaves_the_rest_queued(linear_platform):
    device, engine, clock, model = linear_platform(base_s=3.0, per_request_s=0.5)
    runner = Runner(device=device, engine=engine, workload=Workload(rate_per_s=1.0), requests_per_round=32)
    runner.measure(Config.of(16, gpu_mhz=500.0))
    probe = runner.measure(Config.of(2, gpu_mhz=500.0), max_batches=2)
    assert probe.requests == 4
    assert probe.mean_batch_s == pytest.approx(model.service_s(2))
    assert probe.window_s == pytest.approx(2 * model.service_s(2), abs=1.0)  # back to back, or one gap to fill
    assert runner.backlog_requests == probe.backlog_requests


def test_rounds_served_in_turn_match_one_exact_queue_over_the_whole_stream(linear_platform):
    """Several rounds at one config are one Lindley recursion over the stream, not fresh windows."""
    device, engine, clock, model = linear_platform(base_s=0.5, per_request_s=0.25)
    rate, b = 1.6, 4  # s = 1.5 per 2.5 s of arrivals
    runner = Runner(
        device=device, engine=engine, workload=Workload("poisson", rate, 8, 16), requests_per_round=32, seed=5
    )
    obs = [runner.measure(Config.of(b, gpu_mhz=500.0)) for _ in range(5)]
    n = 5 * 32
    gaps = np.random.default_rng(5).exponential(1 / rate, size=512)
    gaps[0] = 0.0
    arrivals = np.cumsum(gaps)[:n]
    ends, _ = exact_queue(arrivals, b, model.service_s(b))
    latencies = (ends - arrivals).reshape(5, 32).mean(axis=1)
    assert [o.mean_latency_s for o in obs] == pytest.approx(list(latencies), rel=1e-9)


def test_saturated_serves_everything_back_to_back(linear_platform):
    device, engine, clock, model = linear_platform()
    runner = Runner(device=device, engine=engine, workload=Workload(arrivals="saturated"), requests_per_round=12)
    obs = runner.measure(Config.of(4, gpu_mhz=500.0))
    s = model.service_s(4)
    assert obs.window_s == pytest.approx(3 * s)
    assert obs.mean_latency_s == pytest.approx(2 * s)  # batches end at s, 2s, 3s
    assert obs.keeps_up


def test_ttft_is_measured_from_arrival(linear_platform):
    device, engine, clock, model = linear_platform()
    runner = Runner(device=device, engine=engine, workload=Workload(arrivals="saturated"), requests_per_round=4)
    obs = runner.measure(Config.of(4, gpu_mhz=500.0))
    s = model.service_s(4)
    # two batches: TTFT s/4 and s + s/4 after arrival at 0
    assert obs.mean_ttft_s == pytest.approx((s / 4 + s + s / 4) / 2)
    assert obs.mean_ttft_s < obs.mean_latency_s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=40),
    batch_size=st.integers(min_value=1, max_value=9),
    service=st.floats(min_value=0.01, max_value=4.0),
    max_wait=st.one_of(st.none(), st.floats(min_value=0.0, max_value=6.0)),
)
def test_batcher_properties(linear_platform, gaps, batch_size, service, max_wait):
    device, engine, clock, model = linear_platform(base_s=service, per_request_s=0.0)
    arrivals = np.cumsum(gaps)
    requests = [Request(i, float(t), "x", 1, 1) for i, t in enumerate(arrivals)]
    batches = serve_window(
        requests, batcher=StaticBatcher(batch_size, max_wait_s=max_wait), engine=engine, device=device, clock=clock
    )
    served = [r.request_id for b in batches for r in b.requests]
    assert served == list(range(len(requests)))  # every request once, FIFO
    for prev, b in zip(batches, batches[1:]):
        assert b.start_s >= prev.end_s  # one batch at a time
    for b in batches:
        assert 1 <= len(b.requests) <= batch_size
        assert all(r.arrival_s <= b.start_s + 1e-12 for r in b.requests)  # nobody served before arriving
        assert all(b.end_s - r.arrival_s >= service - 1e-12 for r in b.requests)  # latency >= service time
        if max_wait is None and b is not batches[-1]:
            assert len(b.requests) == batch_size


class CountingEngine:
    """Wraps an engine and counts batches; asks for warm-up like a compiled engine does."""

    needs_warmup = True

    def __init__(self, inner):
        self.inner, self.batches = inner, 0

    def generate(self, batch):
        self.batches += 1
        return self.inner.generate(batch)

    def describe(self):
        return {}


def test_engines_that_compile_get_one_untimed_batch_per_new_size(linear_platform):
    device, engine, clock, model = linear_platform()
    counting = CountingEngine(engine)
    runner = Runner(device=device, engine=counting, workload=Workload(arrivals="saturated"), requests_per_round=8)
    obs = runner.measure(Config.of(4, gpu_mhz=500.0))
    assert counting.batches == 3  # warm-up + 2 measured
    assert obs.window_s == pytest.approx(2 * model.service_s(4))  # the warm-up is outside the window
    runner.measure(Config.of(4, gpu_mhz=1000.0))
    assert counting.batches == 5  # no second warm-up for the same size
