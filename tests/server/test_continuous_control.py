"""Online control of `serve` under continuous batching, driven in process on the simulated board's virtual clock.

The harness plays the live step loop (server.stepper): arrivals are offered to the estimator and the continuous
scheduler, admitted requests join the sim engine's sequences, each step runs through the real ServingDriver and
TuningSession, and `host_s` of clock time passes after each step, as the host's own work (relaying text,
admitting requests, the event loop holding the interpreter) does in a live server.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from edpilot.backends import open_backends
from edpilot.continuous_runner import ServedRequest, warm_up
from edpilot.server.control import capacity_per_s
from edpilot.server.driver import ServingDriver
from edpilot.server.estimator import TrafficEstimator
from edpilot.server.metrics import ServerMetrics
from edpilot.serving.continuous import ContinuousScheduler
from edpilot.space import Config
from edpilot.stats import ConfigStats
from edpilot.workload import Request
from tests.server.test_online_control import live_session, uniform
from tests.test_choice import obs

pytest.importorskip("prometheus_client")

STUBBORN = "tests.server.test_online_control:Stubborn"  # always (930.75 MHz, 4): only the control moves it


def serve_steps(
    arrivals_s: np.ndarray, *, strategy: str = "edpilot", budget: int = 8, host_s: float = 0.0, online: bool = True
):
    """Serve `arrivals_s` (clock seconds) with continuous batching (tuning and control only when `online`)."""
    backends, session = live_session(strategy=strategy, budget=budget, batching="continuous")
    driver = ServingDriver(
        backends, session, metrics=ServerMetrics(), online=online, budget=budget, energy_scope="total", continuous=True
    )
    estimator = TrafficEstimator(requests_per_round=32)
    clock, engine = backends.clock, backends.engine
    scheduler: ContinuousScheduler[Request] = ContinuousScheduler(driver.start().batch_size)
    upcoming = deque(Request(k, float(t), "hello there", 16, 70) for k, t in enumerate(arrivals_s))
    joined: dict[int, tuple[Request, float]] = {}
    while upcoming or engine.running():
        now_s = clock.now_s()
        while upcoming and upcoming[0].arrival_s <= now_s:
            r = upcoming.popleft()
            scheduler.offer(r, r.arrival_s)
            change = estimator.observe(r.arrival_s, prompt_tokens=16, output_tokens=70)
            if change is not None:
                driver.offer_traffic(change)
        for r in scheduler.poll(now_s):
            engine.add(r)
            joined[r.request_id] = (r, now_s)
        if engine.running() == 0:
            driver.pause()
            clock.sleep_until(upcoming[0].arrival_s)
            continue
        step, served = driver.step(engine, engine.running())
        clock.sleep(host_s)
        ended = [ServedRequest(*joined.pop(rid), served.end_s, c) for rid, c in step.finished.items()]
        scheduler.release(len(step.finished))
        scheduler.set_slots((driver.finished(ended, backlog=len(scheduler)) if ended else driver.config).batch_size)
    return driver


def test_continuous_capacity_is_the_slots_over_a_requests_share_of_the_step_time():
    stats = ConfigStats(Config.of(8, gpu_mhz=1980.0))
    o = obs(edp=1.0)
    for name, value in (("requests", 32), ("steps", 256), ("mean_sequences", 8.0), ("mean_batch_s", 0.022)):
        object.__setattr__(o, name, value)
    stats.add(o, 1.0)
    # 256 steps of 8 sequences make 2048 tokens for 32 requests: 64 steps' share each, 8 at a time
    assert capacity_per_s(stats) == pytest.approx(8 * 32 / (256 * 8 * 0.022))


def test_a_step_is_measured_over_the_host_work_after_it():
    saturating = uniform(40.0, 400)  # far past (930.75 MHz, 4)'s capacity: the slots never empty
    rounds = serve_steps(saturating, strategy=STUBBORN, host_s=0.02, online=False).session.rounds[2:6]
    for r in rounds:
        assert r.config.batch_size == 4 and r.obs.mean_sequences == pytest.approx(4.0)
        # the loop never waited: its steps, each measured to the next one's start, tile the round
        assert r.obs.steps * r.obs.mean_batch_s == pytest.approx(r.obs.window_s, rel=0.01)
        assert r.obs.mean_batch_s == pytest.approx(0.02, rel=0.01)  # the host's 20 ms outlast the device's step


def test_a_rise_past_the_held_slots_capacity_moves_within_one_round():
    low = uniform(1.0, 300)
    high = uniform(10.0, 1200, start_s=low[-1])  # 4 slots serve ~4 req/s of 70-token answers; 28 or more, >10
    driver = serve_steps(np.concatenate([low, high]), strategy=STUBBORN, host_s=0.005)
    rounds = driver.session.rounds
    cap = {c: capacity_per_s(s) for c, s in driver.session.stats.items()}
    assert cap[Config.of(4, gpu_mhz=930.75)] < 10.0
    rise = next(i for i, r in enumerate(rounds) if "cut short by a traffic drift" in (r.note or ""))
    assert rounds[rise].config.batch_size == 4 and rounds[rise - 1].obs.keeps_up
    after = rounds[rise + 1 :]
    assert len(after) > 10
    assert all(cap[r.config] >= 10.0 for r in after), [(str(r.config), cap[r.config]) for r in after]
    assert sum(not r.obs.keeps_up for r in after) <= 1


def test_warm_up_runs_every_occupancy_once_and_leaves_no_sequence():
    engine = open_backends(device="sim", seed=0).engine
    assert warm_up(engine, 6) == 7  # 6 join at the first step, the last leaves after 7 tokens
    assert engine.running() == 0
