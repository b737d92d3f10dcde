"""The queueing formulas agree with the batcher-driven runner."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.runner import Runner
from edpilot.serving import Traffic
from edpilot.serving.queueing import (
    arrival_draws_s,
    batch_ends_s,
)
from edpilot.space import Config
from edpilot.workload import Workload, arrival_times_s
from tests.serving.window_oracle import forecast_window, static_batch_ends_s, uniform_fill_wait_s


@pytest.mark.parametrize("arrivals", ["uniform", "poisson", "saturated"])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("base_s", [0.2, 3.0])  # keeps up, and does not
def test_batch_end_formula_matches_the_runner(linear_platform, arrivals, batch_size, base_s):
    device, engine, clock, model = linear_platform(base_s=base_s)
    workload = Workload(arrivals=arrivals, rate_per_s=1.5, output_tokens=4, prompt_tokens=4)
    runner = Runner(
        device=device, engine=engine, workload=workload, requests_per_round=24, seed=11, drop_behind=False
    )  # the whole window, also where the config falls behind
    obs = runner.measure(Config.of(batch_size, gpu_mhz=500.0))
    n = runner.window_requests(batch_size)
    a = arrival_times_s(arrivals, rate_per_s=1.5, count=n, rng=np.random.default_rng(11))
    ends = static_batch_ends_s(a, batch_size, model.service_s(batch_size))
    assert obs.mean_latency_s == pytest.approx(float(np.mean(ends - a)), rel=1e-9)
    assert obs.window_s == pytest.approx(float(ends[-1]), rel=1e-9)


def test_formula_is_vectorised_over_many_arrival_sequences():
    rng = np.random.default_rng(0)
    a = np.cumsum(rng.exponential(1.0, size=(5, 12)), axis=1)
    ends = static_batch_ends_s(a, 4, 0.7)
    for row, end_row in zip(a, ends):
        assert np.array_equal(end_row, static_batch_ends_s(row, 4, 0.7))


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_uniform_fill_wait(batch_size):
    assert uniform_fill_wait_s(batch_size, 2.0) == pytest.approx((batch_size - 1) / 4.0)


@pytest.mark.parametrize("arrivals", ["uniform", "poisson", "saturated"])
@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("base_s", [0.2, 3.0])
@pytest.mark.parametrize("scope", ["total", "active"])
def test_forecast_window_matches_the_runner(linear_platform, arrivals, batch_size, base_s, scope):
    device, engine, clock, model = linear_platform(base_s=base_s)
    workload = Workload(arrivals=arrivals, rate_per_s=1.5, output_tokens=4, prompt_tokens=4)
    runner = Runner(
        device=device,
        engine=engine,
        workload=workload,
        requests_per_round=24,
        energy_scope=scope,
        seed=5,
        drop_behind=False,
    )
    obs = runner.measure(Config.of(batch_size, gpu_mhz=500.0))
    a = arrival_times_s(
        arrivals, rate_per_s=1.5, count=runner.window_requests(batch_size), rng=np.random.default_rng(5)
    )
    s = model.service_s(batch_size)
    fc = forecast_window(
        a[None, :],
        batch_size,
        service_s=s,
        energy_per_batch_j=s * model.active_w,
        idle_power_w=model.idle_w,
        energy_scope=scope,
        with_p95=True,
    )
    assert float(fc.energy_per_request_j[0]) == pytest.approx(obs.energy_per_request_j, rel=1e-9)
    assert float(fc.mean_latency_s[0]) == pytest.approx(obs.mean_latency_s, rel=1e-9)
    assert float(fc.p95_latency_s[0]) == pytest.approx(obs.p95_latency_s, rel=1e-9)
    assert float(fc.window_s[0]) == pytest.approx(obs.window_s, rel=1e-9)
    assert float(fc.power_w[0]) == pytest.approx(obs.power_w, rel=1e-9)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_uniform_forecast_waits_the_fill_time(batch_size):
    traffic = Traffic(arrivals="uniform", rate_per_s=2.0, requests_per_round=48)
    a = arrival_draws_s(traffic, traffic.window_requests(batch_size))
    fc = forecast_window(a, batch_size, service_s=0.1, energy_per_batch_j=1.0, idle_power_w=0.0)
    assert float(fc.mean_latency_s[0]) == pytest.approx(uniform_fill_wait_s(batch_size, 2.0) + 0.1)


@pytest.mark.parametrize("base_s", [0.3, 1.2])  # keeps up easily, and close to the edge
def test_poisson_forecast_agrees_with_a_long_runner_window(linear_platform, base_s):
    device, engine, clock, model = linear_platform(base_s=base_s, per_request_s=0.05)
    rate, b = 2.0, 4
    workload = Workload(arrivals="poisson", rate_per_s=rate, output_tokens=4, prompt_tokens=4)
    runner = Runner(device=device, engine=engine, workload=workload, requests_per_round=20_000, seed=3)
    obs = runner.measure(Config.of(b, gpu_mhz=500.0))
    s = model.service_s(b)
    traffic = Traffic(arrivals="poisson", rate_per_s=rate, requests_per_round=2000)
    a = arrival_draws_s(traffic, traffic.window_requests(b), draws=16)
    fc = forecast_window(a, b, service_s=s, energy_per_batch_j=s * model.active_w, idle_power_w=model.idle_w)
    assert float(fc.mean_latency_s.mean()) == pytest.approx(obs.mean_latency_s, rel=0.03)
    assert float(fc.energy_per_request_j.mean()) == pytest.approx(obs.energy_per_request_j, rel=0.02)


def test_trace_draws_replay_the_trace_windows():
    gaps = (0.5, 1.0, 0.25, 2.0)
    traffic = Traffic(arrivals="trace", rate_per_s=1.0, gaps_s=gaps, requests_per_round=3)
    a = arrival_draws_s(traffic, 6, draws=5)
    cycle = list(gaps) + [float(np.mean(gaps))]
    assert a.shape == (5, 6)
    for row, start in zip(a, range(5)):
        expected = np.concatenate([[0.0], np.cumsum([cycle[(start + i) % 5] for i in range(5)])])
        assert np.allclose(row, expected)


def test_batch_ends_handles_padding_and_many_service_times():
    ready = np.array([[0.0, 1.0, 5.0, -np.inf], [0.0, 0.5, 1.0, 1.5]])
    ends = batch_ends_s(ready, np.array([2.0, 0.1]))
    assert np.allclose(ends[0, :3], [2.0, 4.0, 7.0])
    assert np.allclose(ends[1], [0.1, 0.6, 1.1, 1.6])
