"""The steady-state forecast against long replays through the runner; the window forecast (the bench's
side-by-side figure) is the per-batch-size window oracle (`window_oracle.forecast_window`) evaluated for every
config at once."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.objective import Objective
from edpilot.runner import Runner
from edpilot.search.forecast import GridForecast, SteadyForecast
from edpilot.serving import Traffic
from edpilot.serving.queueing import (
    arrival_draws_s,
    batch_ends_s,
    poisson_batch_wait,
    poisson_batch_wait_exact,
    steady_energy_per_request_j,
    steady_latency,
)
from edpilot.space import Config, ConfigSpace
from edpilot.workload import Workload
from tests.serving.window_oracle import forecast_window


@pytest.mark.parametrize("arrivals", ["uniform", "poisson", "saturated", "trace"])
@pytest.mark.parametrize("scope", ["total", "active"])
def test_grid_forecast_equals_forecast_window_per_batch_size(arrivals, scope):
    space = ConfigSpace.grid((400.0, 800.0), (1, 3, 8))
    gaps = (0.2, 1.5, 0.7, 0.1, 3.0) if arrivals == "trace" else None
    traffic = Traffic(arrivals=arrivals, rate_per_s=1.3, requests_per_round=20, gaps_s=gaps)
    rng = np.random.default_rng(0)
    service_s = rng.uniform(0.5, 9.0, len(space))  # some keep up, some fall behind
    energy_j = service_s * 20.0
    idle_w = np.where([c.freq_mhz == 400.0 for c in space], 5.0, 6.0)
    objective = Objective("edp").bind(None)
    grid = GridForecast(space, traffic, energy_scope=scope, draws=8, seed=3)
    out = grid.outlook(objective, service_s=service_s, energy_per_batch_j=energy_j, idle_power_w=idle_w, with_p95=True)
    longest = arrival_draws_s(traffic, max(traffic.window_requests(b) for b in space.batch_sizes), seed=3, draws=8)
    for i, c in enumerate(space):
        a = longest[:, : traffic.window_requests(c.batch_size)]
        fc = forecast_window(
            a,
            c.batch_size,
            service_s=service_s[i],
            energy_per_batch_j=energy_j[i],
            idle_power_w=idle_w[i],
            energy_scope=scope,
            with_p95=True,
        )
        assert out.cost[i] == pytest.approx(float(np.mean(fc.energy_per_request_j * fc.mean_latency_s)), rel=1e-9)
        assert out.p95_latency_s[i] == pytest.approx(float(fc.p95_latency_s.mean()), rel=1e-9)
        assert out.power_w[i] == pytest.approx(float(fc.power_w.mean()), rel=1e-9)
        assert bool(out.keeps_up[i]) == (arrivals == "saturated" or service_s[i] <= c.batch_size / 1.3)


def _replay(linear_platform, arrivals: str, batch_size: int, rho: float, *, requests: int, seed: int = 1):
    """A long replay at one config after a burn-in round: its observation, the traffic and the true hardware."""
    device, engine, clock, model = linear_platform(base_s=1.0, per_request_s=0.1)
    s = model.service_s(batch_size)
    rate = rho * batch_size / s
    workload = Workload(arrivals=arrivals, rate_per_s=rate, output_tokens=4, prompt_tokens=4)
    runner = Runner(device=device, engine=engine, workload=workload, requests_per_round=requests // 10, seed=seed)
    runner.measure(Config.of(batch_size, gpu_mhz=500.0))  # burn-in: the queue settles into its steady state
    runner.requests_per_round = requests
    obs = runner.measure(Config.of(batch_size, gpu_mhz=500.0))
    return obs, Traffic(arrivals=arrivals, rate_per_s=rate), s, model


@pytest.mark.parametrize("arrivals", ["uniform", "poisson"])
@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_steady_forecast_agrees_with_a_long_replay(linear_platform, arrivals, rho):
    """The one definition the search and the oracle share, against the runner serving 60 000 requests of one
    continuous stream (queue carried over): cost within 1 %."""
    b = 8
    obs, traffic, s, model = _replay(linear_platform, arrivals, b, rho, requests=60_000)
    space = ConfigSpace.grid((500.0,), (b,))
    out = SteadyForecast(space, traffic).outlook(
        Objective("edp").bind(None),
        service_s=np.array([s]),
        energy_per_batch_j=np.array([s * model.active_w]),
        idle_power_w=np.array([model.idle_w]),
    )
    assert out.utilisation[0] == pytest.approx(rho)
    assert out.cost[0] == pytest.approx(obs.edp, rel=0.01)
    assert out.mean_latency_s[0] == pytest.approx(obs.mean_latency_s, rel=0.01)
    assert out.energy_per_request_j[0] == pytest.approx(obs.energy_per_request_j, rel=0.01)


@pytest.mark.parametrize("arrivals", ["uniform", "poisson"])
def test_steady_forecast_near_capacity_agrees_with_a_long_replay(linear_platform, arrivals):
    """At 95 % utilisation; batches of 32 (Erlang-32 gaps between batches) let 200 000 requests pin the Poisson
    queue's mean to well under 1 % (with batches of 4 the replay itself wanders by ±4 %)."""
    b = 32
    obs, traffic, s, model = _replay(linear_platform, arrivals, b, 0.95, requests=200_000)
    lat = steady_latency(traffic, b, np.array([s]))
    energy = steady_energy_per_request_j(
        traffic, b, service_s=s, energy_per_batch_j=s * model.active_w, idle_power_w=model.idle_w
    )
    assert float(lat.mean_s[0]) == pytest.approx(obs.mean_latency_s, rel=0.01)
    assert float(energy) * float(lat.mean_s[0]) == pytest.approx(obs.edp, rel=0.01)
    if arrivals == "poisson":
        assert float(lat.wait_s[0]) > 0.1 * float(lat.mean_s[0])  # the queue is part of it, and priced


@pytest.mark.parametrize("batch_size", [1, 4, 16])
@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9, 0.95])
def test_poisson_batch_wait_is_the_lindley_recursion_in_steady_state(batch_size, rho):
    """The exact E_b/D/1 wait against 4 million simulated batches (W_k = max(0, W_{k-1} + s - gap_k))."""
    gaps = np.random.default_rng(11).gamma(batch_size, 1.0, size=4_000_000)
    walk = np.cumsum(batch_size * rho - gaps)
    wait = walk - np.minimum(np.minimum.accumulate(walk), 0.0)
    simulated = float(wait[len(wait) // 10 :].mean())
    exact = float(poisson_batch_wait_exact(batch_size, rho))
    latency = batch_size * rho + (batch_size - 1) / 2.0  # s + fill wait, in mean gaps
    assert exact + latency == pytest.approx(simulated + latency, rel=0.01)
    assert float(poisson_batch_wait(batch_size, rho)) == pytest.approx(exact, abs=1e-5)  # the table the search reads
    if batch_size == 1:  # Pollaczek–Khinchine
        assert exact == pytest.approx(rho**2 / (2 * (1 - rho)), rel=1e-9)


def test_no_steady_state_at_or_past_capacity():
    traffic = Traffic(arrivals="poisson", rate_per_s=2.0)
    lat = steady_latency(traffic, 4, np.array([1.9, 2.0, 2.5]))
    assert np.isfinite(lat.mean_s[0]) and np.isinf(lat.mean_s[1:]).all()
    assert np.isinf(poisson_batch_wait(4, np.array([1.0, 1.2]))).all()


def test_trace_table_matches_the_replayed_trace():
    """A trace's simulated table: a long replay of the trace through the runner agrees with it within 2 %."""
    gaps = (0.2, 1.5, 0.7, 0.1, 3.0, 0.4)
    traffic = Traffic(arrivals="trace", rate_per_s=len(gaps) / (sum(gaps) + np.mean(gaps)), gaps_s=gaps)
    lat = steady_latency(traffic, 4, np.array([2.0]))
    # the same semantics on the trace cycled: ready times every 4 arrivals, Lindley over them
    cycle = np.array(list(gaps) + [float(np.mean(gaps))])
    arrivals = np.concatenate([[0.0], np.cumsum(np.tile(cycle, 20_000))])[: 4 * 30_000]
    ready = arrivals[3::4]
    ends = batch_ends_s(ready[None, :], 2.0)[0]
    latency = np.repeat(ends, 4) - arrivals
    assert float(lat.mean_s[0]) == pytest.approx(float(latency[len(latency) // 10 :].mean()), rel=0.02)
