"""Online control of `serve`, driven in process on the simulated board's virtual clock (no HTTP, no wall time).

The harness plays the live batcher: arrivals are stamped on the device's clock, offered to the estimator and
the static batcher, and each released batch is served by the real ServingDriver and TuningSession.
"""

from __future__ import annotations

import concurrent.futures as cf

import httpx
import numpy as np
import pytest

from edpilot.backends import Backends, open_backends
from edpilot.run import SearchRequest, start_session
from edpilot.runlog import RunLog
from edpilot.search import Strategy
from edpilot.server.control import capacity_per_s, control, top_corner
from edpilot.server.driver import ServingDriver
from edpilot.server.estimator import TrafficEstimator
from edpilot.server.metrics import ServerMetrics
from edpilot.serving.batcher import StaticBatcher
from edpilot.serving.traffic import Traffic
from edpilot.space import Config, ConfigSpace
from edpilot.stats import ConfigStats
from edpilot.tuner import TuningSession
from edpilot.workload import Request
from tests.test_choice import obs

pytest.importorskip("prometheus_client")


def live_session(**search: object) -> tuple[Backends, TuningSession]:
    """The simulated board and a `serve` session on it, searching as `search` says (SearchRequest's fields)."""
    backends = open_backends(device="sim", seed=0)
    session = start_session(
        backends,
        SearchRequest(requests_per_round=32, **search),  # type: ignore[arg-type]
        Traffic(arrivals="saturated", requests_per_round=32),
        run_log=RunLog(None),
        model="llama-3.2-1b",
        mode="serve",
        workload_name="live",
        output_tokens=None,
    )
    return backends, session


def serve_arrivals(arrivals_s: np.ndarray, *, strategy: str = "edpilot", budget: int = 8, **search: object):
    """Serve `arrivals_s` (clock seconds) online; returns the driver (its session holds every round)."""
    backends, session = live_session(strategy=strategy, budget=budget, **search)
    metrics = ServerMetrics()
    driver = ServingDriver(backends, session, metrics=metrics, online=True, budget=budget, energy_scope="total")
    estimator = TrafficEstimator(requests_per_round=32)
    clock = backends.clock
    batcher: StaticBatcher[Request] = StaticBatcher(driver.start().batch_size)
    for k, t in enumerate(arrivals_s):
        while (batch := batcher.poll(clock.now_s())) is not None:
            batcher.set_batch_size(driver.serve(batch).batch_size)
        clock.sleep_until(float(t))
        batcher.offer(Request(k, float(t), "hello there", 16, 70), float(t))
        change = estimator.observe(float(t), prompt_tokens=16, output_tokens=70)
        if change is not None:
            driver.offer_traffic(change)
    return driver, metrics


def uniform(rate_per_s: float, count: int, start_s: float = 0.0) -> np.ndarray:
    return start_s + np.arange(1, count + 1) / rate_per_s


class Stubborn(Strategy):
    """Proposes and chooses (930.75 MHz, b 4) whatever the traffic: only the online control can move it."""

    def propose(self) -> Config:
        return Config.of(4, gpu_mhz=930.75)

    best = propose


@pytest.mark.parametrize("strategy", ["edpilot", "tests.server.test_online_control:Stubborn"])
def test_a_rate_past_the_held_batchs_capacity_moves_within_one_round(strategy):
    low = uniform(1.0, 400)
    high = uniform(10.0, 1500, start_s=low[-1])  # b = 4 serves ~6 req/s; the baseline's b = 28 about 20
    driver, _ = serve_arrivals(np.concatenate([low, high]), strategy=strategy)
    rounds = driver.session.rounds
    cap = {c: capacity_per_s(s) for c, s in driver.session.stats.items()}
    held = rounds[10]
    assert held.config.batch_size == 4 and held.obs.keeps_up  # before the rise: batch 4 serves 1 req/s
    rise = next(i for i, r in enumerate(rounds) if "cut short by a traffic drift" in (r.note or ""))
    assert rounds[rise].config.batch_size == 4  # the round the rise caught, cut short at the next batch
    after = rounds[rise + 1 :]
    assert len(after) > 20
    probes = [r for r in after if (r.note or "").startswith("probe")]  # bounded: at most 2 batches each
    assert all(r.obs.requests <= 2 * r.config.batch_size for r in probes)
    full = [r for r in after if r not in probes]
    assert all(cap[r.config] >= 10.0 for r in full), [(str(r.config), cap[r.config]) for r in full]
    assert driver.overload is None and driver.status["overloaded"] is False


def test_a_rate_no_config_can_serve_is_said_once_and_the_fastest_config_served():
    driver, metrics = serve_arrivals(uniform(200.0, 3000), budget=4)
    assert driver.overload is not None and driver.overload.startswith("every config falls behind")
    assert driver.status["overloaded"] is True
    assert metrics.overloaded._value.get() == 1
    corner = top_corner(driver.session.space)
    last = driver.session.rounds[-3:]
    assert all(r.config == corner for r in last), [str(r.config) for r in last]


def test_control_moves_off_a_config_measured_behind_to_the_cheapest_that_keeps_up():
    space = ConfigSpace.grid((500.0, 900.0), (2, 8))
    stats = {}
    for config, batch_s, cost in (
        (Config.of(2, gpu_mhz=900.0), 1.0, 1.0),
        (Config.of(8, gpu_mhz=900.0), 1.0, 3.0),
        (Config.of(8, gpu_mhz=500.0), 2.0, 2.0),
    ):
        s = ConfigStats(config)
        s.add(obs(edp=cost), cost)
        stats[config] = s
        object.__setattr__(s.observations[0], "mean_batch_s", batch_s)
    assert capacity_per_s(stats[Config.of(2, gpu_mhz=900.0)]) == pytest.approx(2.0)
    d = control(Config.of(2, gpu_mhz=900.0), stats=stats, space=space, rate_per_s=3.0)
    assert d.config == Config.of(8, gpu_mhz=500.0) and not d.overloaded and "below the arrival rate 3" in d.note
    assert control(Config.of(2, gpu_mhz=900.0), stats=stats, space=space, rate_per_s=1.5).config == Config.of(
        2, gpu_mhz=900.0
    )
    over = control(Config.of(2, gpu_mhz=900.0), stats=stats, space=space, rate_per_s=9.0)
    assert over.overloaded and over.config == Config.of(8, gpu_mhz=900.0)
    assert control(Config.of(2, gpu_mhz=900.0), stats=stats, space=space, rate_per_s=None).config == Config.of(
        2, gpu_mhz=900.0
    )


def test_healthz_and_metrics_say_an_unmet_constraint(serve):
    srv = serve("--device", "sim", "--freq", "816", "--batch", "4", "--slo-p95", "0.001", "--sim-speed", "50")
    client = srv.client()
    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(lambda i: client.completions.create(model="llama-3.2-1b", prompt=f"p{i}", max_tokens=4), range(40))
        )
    health = httpx.get(srv.url + "/healthz").json()
    assert health["constraints_met"] == {"slo_p95_s": False} and health["overloaded"] is False
    text = httpx.get(srv.url + "/metrics").text
    assert 'edpilot_constraint_met{constraint="slo_p95_s"} 0.0' in text
    assert "edpilot_overloaded 0.0" in text
    srv.stop()
    assert "--slo-p95 0.001 s cannot be met" in srv.log
