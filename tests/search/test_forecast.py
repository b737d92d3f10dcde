"""The grid forecast is `forecast_window` (held equal to the runner) evaluated for every config at once."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.objective import Objective
from edpilot.search.forecast import GridForecast
from edpilot.serving import Traffic
from edpilot.serving.queueing import arrival_draws_s, forecast_window
from edpilot.space import ConfigSpace


@pytest.mark.parametrize("arrivals", ["uniform", "poisson", "saturated", "trace"])
@pytest.mark.parametrize("scope", ["total", "active"])
def test_grid_forecast_equals_forecast_window_per_batch_size(arrivals, scope):
    space = ConfigSpace((400.0, 800.0), (1, 3, 8))
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
