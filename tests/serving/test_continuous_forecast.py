"""The steady state of continuous batching: the queue maths against replay and exact cases, and the search on it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from edpilot.continuous_runner import ContinuousRunner
from edpilot.objective import Objective, parse_objective
from edpilot.search import SearchContext
from edpilot.search.continuous_forecast import ContinuousForecast, busy_units, make_forecast, taught_by
from edpilot.search.edpilot import EdpilotStrategy
from edpilot.search.forecast import SteadyForecast
from edpilot.serving.continuous_queue import steady_continuous
from edpilot.serving.traffic import Traffic
from edpilot.sim import open_sim
from edpilot.space import Config, ConfigSpace
from edpilot.tuner import SessionSettings, TuningSession, tune
from edpilot.workload import Workload


def _replay(freq_mhz: float, slots: int, rate: float, *, warmup: int = 100, requests: int = 600):
    sim = open_sim("sim:orin-agx-32gb", seed=0)
    workload = Workload(arrivals="poisson", rate_per_s=rate, output_tokens=70)
    runner = ContinuousRunner(device=sim.device, engine=sim.engine, workload=workload, requests_per_round=warmup)
    runner.measure(Config.of(slots, gpu_mhz=freq_mhz))  # the queue fills to its steady level
    runner.requests_per_round = requests
    return runner.measure(Config.of(slots, gpu_mhz=freq_mhz)), sim.model.idle_power_w(freq_mhz)


@pytest.mark.parametrize(("freq_mhz", "slots", "rate"), [(714.0, 8, 4.0), (306.0, 4, 2.0), (714.0, 4, 0.25)])
def test_the_steady_state_matches_replay_from_the_measured_steps(freq_mhz: float, slots: int, rate: float) -> None:
    obs, idle_w = _replay(freq_mhz, slots, rate)
    assert obs.steps is not None and obs.steps * slots >= obs.requests * 70 / slots  # steps were counted
    steady = steady_continuous(
        Traffic("poisson", rate, output_tokens=70),
        slots,
        step_s=obs.mean_batch_s,
        step_energy_j=obs.energy_per_batch_j,
        idle_power_w=idle_w,
    )
    assert bool(steady.keeps_up)
    assert float(steady.mean_latency_s) == pytest.approx(obs.mean_latency_s, rel=0.06)
    assert float(steady.energy_per_request_j) == pytest.approx(obs.energy_per_request_j, rel=0.03)
    # busy for the measured steps' time: steps × mean step over the window
    assert float(steady.busy) == pytest.approx(obs.steps * obs.mean_batch_s / obs.window_s, abs=0.04)


def test_one_slot_is_the_m_d_1_queue() -> None:
    step_s, rate = 0.01, 1.0
    service_s = 70 * step_s
    rho = rate * service_s
    steady = steady_continuous(
        Traffic("poisson", rate, output_tokens=70), 1, step_s=step_s, step_energy_j=0.2, idle_power_w=5.0
    )
    # Pollaczek–Khinchine for deterministic service: W = ρD / (2(1 − ρ)); busy ρ; a join waits half a step when busy
    wait_s = rho * service_s / (2 * (1 - rho))
    assert float(steady.mean_latency_s) == pytest.approx(service_s + wait_s + 0.5 * step_s * rho, rel=1e-9)
    assert float(steady.busy) == pytest.approx(rho, rel=1e-9)
    assert float(steady.power_w) == pytest.approx(rho * 20.0 + (1 - rho) * 5.0, rel=1e-9)
    assert float(steady.energy_per_request_j) == pytest.approx(float(steady.power_w) / rate, rel=1e-9)
    active = steady_continuous(
        Traffic("poisson", rate, output_tokens=70),
        1,
        step_s=step_s,
        step_energy_j=0.2,
        idle_power_w=5.0,
        energy_scope="active",
    )
    assert float(active.energy_per_request_j) == pytest.approx(70 * 0.2, rel=1e-9)  # its steps' energy alone


def test_past_capacity_has_no_steady_state_and_uniform_arrivals_never_queue() -> None:
    slots = np.array([2.0, 8.0])
    poisson = steady_continuous(
        Traffic("poisson", 4.0, output_tokens=70), slots, step_s=0.01, step_energy_j=0.1, idle_power_w=5.0
    )
    assert list(poisson.keeps_up) == [False, True] and math.isinf(poisson.mean_latency_s[0])
    assert poisson.utilisation == pytest.approx([4 * 0.7 / 2, 4 * 0.7 / 8])
    uniform = steady_continuous(
        Traffic("uniform", 1.0, output_tokens=70), 4, step_s=0.01, step_energy_j=0.1, idle_power_w=5.0
    )
    assert float(uniform.mean_latency_s) == pytest.approx(0.7) and float(uniform.busy) == pytest.approx(0.7)


def test_the_strategy_prices_steps_with_the_continuous_forecast() -> None:
    space = ConfigSpace.grid((510.0, 930.75), (2, 8))
    traffic = Traffic("poisson", 4.0, output_tokens=70)
    ctx = SearchContext(space, Objective("edp").bind(None), space.baseline(), traffic, batching="continuous")
    strategy = EdpilotStrategy(ctx)
    assert isinstance(strategy.forecast, ContinuousForecast)
    assert isinstance(make_forecast(space, traffic, energy_scope="total"), SteadyForecast)
    # a continuous window of 700 steps of 10 ms: 7 s busy of a 10 s window
    obs = _window(steps=700, step_s=0.01, step_j=0.2, window_s=10.0, idle_w=5.0)
    assert busy_units(strategy.forecast, Config.of(8, gpu_mhz=930.75), obs) == 700
    strategy.observe_baseline(obs)
    strategy.observe(space.baseline(), obs)  # the first window far from the prior is held until a second agrees
    assert strategy.time.windows.sum() == 2
    assert strategy.idle.predict() == pytest.approx(5.0)  # idle = (window energy − steps' energy) / idle time
    outlook = strategy.outlook("own")
    # two slots at 10 ms steps serve 2 / 0.7 s = 2.9 req/s < 4: no steady state; eight slots keep up
    two, eight = space.index(Config.of(2, gpu_mhz=930.75)), space.index(Config.of(8, gpu_mhz=930.75))
    assert [outlook.keeps_up[two], outlook.keeps_up[eight]] == [False, True]
    assert math.isinf(outlook.cost[space.index(Config.of(2, gpu_mhz=930.75))])
    assert strategy.set_traffic(Traffic("poisson", 1.0, output_tokens=70)) is None
    assert isinstance(strategy.forecast, ContinuousForecast) and strategy.forecast.traffic.rate_per_s == 1.0


def _window(*, steps: int, step_s: float, step_j: float, window_s: float, idle_w: float):
    from edpilot.objective import Observation

    energy_j = steps * step_j + idle_w * (window_s - steps * step_s)
    return Observation(
        requests=32,
        energy_per_request_j=energy_j / 32,
        mean_latency_s=0.72,
        p95_latency_s=0.8,
        mean_ttft_s=0.02,
        power_w=energy_j / window_s,
        mean_batch_s=step_s,
        energy_per_batch_j=step_j,
        window_s=window_s,
        keeps_up=True,
        steps=steps,
    )


def test_a_round_that_never_filled_its_slots_teaches_every_slot_count_it_did_not_reach() -> None:
    space = ConfigSpace.grid((510.0, 930.75), (2, 4, 8, 16))
    traffic = Traffic("poisson", 1.0, output_tokens=70)
    ctx = SearchContext(space, Objective("edp").bind(None), space.baseline(), traffic, batching="continuous")
    strategy = EdpilotStrategy(ctx)
    obs = replace(_window(steps=700, step_s=0.01, step_j=0.2, window_s=10.0, idle_w=5.0), peak_sequences=3)
    configs = list(space)
    sixteen = space.index(Config.of(16, gpu_mhz=930.75))
    taught = [configs[j] for j in taught_by(strategy.forecast, configs, sixteen, obs)]
    assert taught == [Config.of(b, gpu_mhz=930.75) for b in (4, 8, 16)]  # at least 3 slots, same clock
    full = replace(obs, peak_sequences=16)  # the cap may have held requests back: only its own config
    assert taught_by(strategy.forecast, configs, space.index(Config.of(16, gpu_mhz=930.75)), full) == [
        space.index(Config.of(16, gpu_mhz=930.75))
    ]
    static = make_forecast(space, traffic, energy_scope="total")
    assert taught_by(static, configs, 3, obs) == [3]
    strategy.observe_baseline(obs)
    strategy.observe(space.baseline(), obs)
    assert [strategy.time.windows[space.index(c)] for c in taught] == [2, 2, 2]
    assert strategy.time.windows[space.index(Config.of(2, gpu_mhz=930.75))] == 0
    assert strategy.best() == space.baseline()  # the choice is a config that was served


def test_tuning_concurrency_on_the_simulator_leaves_the_costly_corners() -> None:
    """`tune --batching continuous` with our strategy at 4 req/s on a 4 × 4 grid. The replayed steady state (600
    requests per config, benchmarks/continuous_search.py) puts 714 MHz with 8+ slots best, 930.75 MHz 4 % and
    510 MHz 10 % above it, 4 slots 14 % or more and 306 MHz 69 % or more: the search must end at 714 or 930.75
    MHz with 8+ slots, having tried at least three clocks."""
    sim = open_sim("sim:orin-agx-32gb", seed=3)
    space = ConfigSpace.grid((306.0, 510.0, 714.0, 930.75), (4, 8, 16, 28))
    workload = Workload(arrivals="poisson", rate_per_s=4.0, output_tokens=70)
    settings = SessionSettings(
        space=space,
        objective=parse_objective("edp"),
        strategy="edpilot",
        baseline=space.baseline(),
        seed=3,
        budget=12,
        batching="continuous",
    )
    session = TuningSession(settings, workload.traffic(32))
    runner = ContinuousRunner(device=sim.device, engine=sim.engine, workload=workload, requests_per_round=32, seed=3)
    result = tune(runner=runner, session=session, budget=12)
    chosen = result.best.config
    assert chosen.freq_mhz in (714.0, 930.75) and chosen.batch_size >= 8
    assert len({r.config.freq_mhz for r in result.rounds}) >= 3
    assert result.best.edp is not None  # the choice was served and measured
