"""Continuous batching: the sans-IO scheduler, and replay of one stream through it on the simulator."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from edpilot.continuous_runner import ContinuousRunner
from edpilot.errors import ConfigError
from edpilot.runner import Runner
from edpilot.serving.continuous import ContinuousScheduler
from edpilot.sim import open_sim
from edpilot.space import Config
from edpilot.workload import Workload


@dataclass(frozen=True)
class Arrival:
    name: str
    arrival_s: float


def test_a_request_joins_at_the_next_step_when_a_slot_is_free() -> None:
    s: ContinuousScheduler[Arrival] = ContinuousScheduler(2)
    assert s.poll(0.0) == [] and s.next_deadline_s() is None
    s.offer(Arrival("a", 0.0), 0.0)
    assert s.next_deadline_s() == 0.0  # a slot is free: a step must start now
    assert [r.name for r in s.poll(0.0)] == ["a"] and s.running == 1
    for name in "bcd":
        s.offer(Arrival(name, 1.0), 1.0)
    assert [r.name for r in s.poll(1.0)] == ["b"]  # one free slot: the oldest joins
    assert s.poll(1.0) == [] and s.next_deadline_s() is None and len(s) == 2
    s.release(2)
    assert [r.name for r in s.poll(2.0)] == ["c", "d"] and s.running == 2


def test_fewer_slots_cut_no_running_sequence_and_admit_none_until_below() -> None:
    s: ContinuousScheduler[Arrival] = ContinuousScheduler(3)
    for name in "abcd":
        s.offer(Arrival(name, 0.0), 0.0)
    assert len(s.poll(0.0)) == 3
    s.set_slots(1)
    s.release(1)
    assert s.poll(0.0) == [] and s.running == 2
    s.release(2)
    assert [r.name for r in s.poll(0.0)] == ["d"]


def test_scheduler_refuses_bad_input() -> None:
    with pytest.raises(ConfigError):
        ContinuousScheduler(0)
    s: ContinuousScheduler[Arrival] = ContinuousScheduler(1)
    with pytest.raises(ValueError):
        s.offer(Arrival("late", 5.0), 1.0)
    with pytest.raises(ValueError):
        s.release(1)


def _observe(kind: str, rate_per_s: float, config: Config, rounds: int = 3) -> list:
    sim = open_sim("sim:orin-agx-32gb", seed=7)
    workload = Workload(arrivals="poisson", rate_per_s=rate_per_s, output_tokens=70)
    cls = ContinuousRunner if kind == "continuous" else Runner
    runner = cls(device=sim.device, engine=sim.engine, workload=workload, requests_per_round=32)
    return [runner.measure(config) for _ in range(rounds)]


def test_continuous_replay_at_low_rate_beats_static_on_edp() -> None:
    config = Config.of(8, gpu_mhz=930.75)
    static = _observe("static", 0.25, config)[-1]
    continuous = _observe("continuous", 0.25, config)[-1]
    # Static waits for 8 requests (~28 s at 0.25 req/s); continuous starts each at once.
    assert continuous.mean_latency_s < 0.1 * static.mean_latency_s
    assert continuous.edp < 0.2 * static.edp
    assert continuous.p95_ttft_s < continuous.p95_latency_s < 2.0
    assert continuous.requests == 32 and continuous.keeps_up


def test_continuous_rounds_carry_the_stream_over() -> None:
    sim = open_sim("sim:orin-agx-32gb", seed=1)
    workload = Workload(arrivals="uniform", rate_per_s=2.0, output_tokens=40)
    runner = ContinuousRunner(device=sim.device, engine=sim.engine, workload=workload, requests_per_round=16)
    first = runner.measure(Config.of(4, gpu_mhz=930.75))
    second = runner.measure(Config.of(4, gpu_mhz=612.0))
    assert first.requests == second.requests == 16
    # one stream: the second round starts where the first ended, at 2 req/s, so 16 requests span ~8 s each
    assert first.window_s == pytest.approx(8.0, abs=1.5) and second.window_s == pytest.approx(8.0, abs=1.5)
    assert second.actual_freq_mhz == 612.0 and second.mean_batch_s > first.mean_batch_s  # a slower clock, longer steps


def test_continuous_runner_refuses_an_engine_without_steps() -> None:
    class Whole:
        name = "whole"

    sim = open_sim("sim")
    with pytest.raises(ConfigError, match="step-level"):
        ContinuousRunner(device=sim.device, engine=Whole(), workload=Workload())
