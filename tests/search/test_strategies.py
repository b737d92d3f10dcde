"""Every strategy finds the known optimum of a small synthetic profile, for several seeds."""

from __future__ import annotations

import pytest

from edpilot.backends import build_space, open_backends
from edpilot.objective import Objective, Observation
from edpilot.search import STRATEGIES, SearchContext, make_strategy
from edpilot.serving import Traffic
from edpilot.space import Config, ConfigSpace
from edpilot.workload import Workload
from tests.conftest import run_tune, write_synthetic_profile

FREQS = (300.0, 600.0, 900.0, 1200.0)
BATCHES = (1, 2, 4, 8, 16)
OPTIMUM = Config.of(4, gpu_mhz=600.0)


def bowl(freq_mhz: float, batch: int) -> tuple[float, float]:
    """Saturated arrivals: a bowl-shaped EDP with its minimum at (600 MHz, batch 4)."""
    df = abs(FREQS.index(freq_mhz) - FREQS.index(OPTIMUM.freq_mhz))
    db = abs(BATCHES.index(batch) - BATCHES.index(OPTIMUM.batch_size))
    scale = 1.0 + 0.25 * (df + db) + 0.05 * (df * db)
    return 1.0 * scale * batch, 10.0 * scale * batch  # latency_s, energy_j per batch


@pytest.fixture
def profile(tmp_path):
    return write_synthetic_profile(tmp_path / "bowl.csv", bowl, freqs_mhz=FREQS, batch_sizes=BATCHES)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("strategy,budget", [("grid", 20), ("random", 25), ("camel", 40)])
def test_strategy_finds_the_optimum(profile, strategy, budget, seed):
    backends = open_backends(device="sim", profile=str(profile), seed=seed)
    assert len(build_space(backends)) == 20
    result = run_tune(
        backends,
        strategy=strategy,
        budget=budget,
        workload=Workload(arrivals="saturated"),
        requests_per_round=16,
        energy_scope="active",
        seed=seed,
    )
    assert result.best.config == OPTIMUM
    assert result.summary.edp_gain_pct > 50


def context(space: ConfigSpace, seed: int = 0) -> SearchContext:
    """Energy per request is the cost; the baseline is the grid's."""
    return SearchContext(
        space=space, objective=Objective("energy").bind(None), baseline=space.baseline(), traffic=Traffic(), seed=seed
    )


def test_baseline_strategy_stays_at_baseline():
    space = ConfigSpace.grid(FREQS, BATCHES)
    s = make_strategy("baseline", context(space))
    assert s.propose() == Config.of(16, gpu_mhz=1200.0) == s.best()


def _obs(cost: float, keeps_up: bool = True) -> Observation:
    return Observation(
        requests=4,
        energy_per_request_j=cost,
        mean_latency_s=1.0,
        p95_latency_s=1.0,
        mean_ttft_s=None,
        power_w=None,
        mean_batch_s=1.0,
        energy_per_batch_j=None,
        window_s=4.0,
        keeps_up=keeps_up,
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_best_prefers_configs_that_keep_up(name):
    space = ConfigSpace.grid(FREQS, BATCHES)
    s = make_strategy(name, context(space))
    s.observe(Config.of(1, gpu_mhz=300.0), _obs(0.1, keeps_up=False))
    s.observe(Config.of(8, gpu_mhz=900.0), _obs(0.5))
    if name != "baseline":
        assert s.best() == Config.of(8, gpu_mhz=900.0)


def test_grid_visits_every_config_once_then_exploits():
    space = ConfigSpace.grid(FREQS, BATCHES)
    s = make_strategy("grid", context(space))
    seen = []
    for _ in range(len(space)):
        c = s.propose()
        seen.append(c)
        s.observe(c, _obs(1.0 + (c != OPTIMUM)))
    assert sorted(seen) == sorted(space.configs)
    assert s.propose() == OPTIMUM


def test_camel_posterior_concentrates_on_repeated_arm():
    space = ConfigSpace.grid(FREQS, BATCHES)
    s = make_strategy("camel", context(space))
    for _ in range(10):
        s.observe(OPTIMUM, _obs(1.0))
    s.observe(Config.of(1, gpu_mhz=300.0), _obs(2.0))
    mean, sd = s.posterior()
    i = space.index(OPTIMUM)
    assert mean[i] == pytest.approx(1.0, abs=0.02)
    assert sd[i] < sd[space.index(Config.of(1, gpu_mhz=300.0))] < sd[space.index(Config.of(16, gpu_mhz=1200.0))]
