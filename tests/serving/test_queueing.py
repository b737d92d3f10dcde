"""The queueing formulas agree with the batcher-driven runner."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.runner import Runner
from edpilot.serving.queueing import static_batch_ends_s, uniform_fill_wait_s
from edpilot.space import Config
from edpilot.workload import Workload, arrival_times_s


@pytest.mark.parametrize("arrivals", ["uniform", "poisson", "saturated"])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("base_s", [0.2, 3.0])  # keeps up, and does not
def test_batch_end_formula_matches_the_runner(linear_platform, arrivals, batch_size, base_s):
    device, engine, clock, model = linear_platform(base_s=base_s)
    workload = Workload(arrivals=arrivals, rate_per_s=1.5, output_tokens=4, prompt_tokens=4)
    runner = Runner(device=device, engine=engine, workload=workload, requests_per_round=24, seed=11)
    obs = runner.measure(Config(500.0, batch_size))
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
