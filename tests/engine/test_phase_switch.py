"""PhaseSwitch (the runner's on_decode hook) on the simulated board, and which engines may switch per phase."""

from __future__ import annotations

import numpy as np
import pytest

import edpilot.sim  # noqa: F401  (registers the sim engine)
from edpilot.engine import check_phase_clocks, open_engine
from edpilot.errors import ConfigError
from edpilot.runner import run_batch
from edpilot.serving.phase import PhaseSwitch, phase_switch
from edpilot.sim import Levels, open_sim
from edpilot.sim.model import noise_factors
from edpilot.workload import Request

WRITE_S = 0.004  # what one knob write takes on the board below (slept on its virtual clock)


@pytest.fixture
def board(monkeypatch):
    """The simulated board, each knob write logged and taking WRITE_S of its clock."""
    p = open_sim("sim:orin-agx-32gb", seed=3)
    p.writes = []
    real = p.device.set_knob

    def slow_set_knob(name, level):
        p.writes.append((name, level))
        p.clock.sleep(WRITE_S)
        real(name, level)

    monkeypatch.setattr(p.device, "set_knob", slow_set_knob)
    return p


def test_only_the_knobs_that_differ_are_written_and_each_write_is_timed(board):
    switch = PhaseSwitch(
        board.device, board.clock, prefill={"gpu_mhz": 930.75, "emc_mhz": 3199.0}, decode={"gpu_mhz": 612.0}
    )
    switch.on_decode()
    assert board.writes == [("gpu_mhz", 612.0)] and board.device.knob_level("gpu_mhz") == 612.0
    switch.end_batch()
    switch.end_batch()  # idempotent
    assert board.writes == [("gpu_mhz", 612.0), ("gpu_mhz", 930.75)]
    assert switch.switches == 1 and switch.switch_s == pytest.approx(2 * WRITE_S)


def test_equal_levels_write_nothing(board):
    switch = PhaseSwitch(board.device, board.clock, prefill={"gpu_mhz": 612.0}, decode={"gpu_mhz": 612.0})
    switch.on_decode()
    switch.end_batch()
    assert board.writes == [] and switch.switches == 0 and switch.switch_s == 0.0
    assert phase_switch(board.device, board.clock, prefill={"gpu_mhz": 612.0}, decode={}) is None  # one level


def test_a_decode_knob_the_config_does_not_set_goes_back_to_the_level_the_board_held(board):
    board.device.set_knob("emc_mhz", 2133.0)
    board.writes.clear()
    switch = PhaseSwitch(board.device, board.clock, prefill={"gpu_mhz": 930.75}, decode={"emc_mhz": 665.6})
    switch.on_decode()
    assert board.device.knob_level("emc_mhz") == 665.6
    switch.end_batch()
    assert board.writes == [("emc_mhz", 665.6), ("emc_mhz", 2133.0)]


def test_an_unknown_knob_is_refused_before_anything_is_written(board):
    with pytest.raises(ConfigError, match="has no knob cpu_mhz"):
        PhaseSwitch(board.device, board.clock, prefill={}, decode={"cpu_mhz": 1000.0})
    assert board.writes == []


def test_the_switch_time_lands_inside_the_measured_batch(board):
    prefill, decode = Levels(930.75, 3199.0), Levels(612.0, 665.6)
    switch = PhaseSwitch(
        board.device,
        board.clock,
        prefill={"gpu_mhz": prefill.gpu_mhz, "emc_mhz": prefill.emc_mhz},
        decode={"gpu_mhz": decode.gpu_mhz, "emc_mhz": decode.emc_mhz},
    )
    reqs = [Request(i, 0.0, "p", 100, 30) for i in range(4)]
    served = run_batch(reqs, engine=board.engine, device=board.device, clock=board.clock, phase=switch)
    time_factor, _ = noise_factors(np.random.default_rng(3))
    modelled_s = board.device.model.phase_cost(prefill, decode, [100] * 4, 30).batch_cost().service_s * time_factor
    assert len(board.writes) == 4 and switch.switch_s == pytest.approx(4 * WRITE_S)
    assert served.end_s - served.start_s == pytest.approx(modelled_s + 4 * WRITE_S, rel=1e-9)


def test_which_engines_can_switch_per_phase():
    for spec in ("sim", "hf:tiny", "llamacpp:gemma-3-270m"):
        check_phase_clocks(spec)
    with pytest.raises(ConfigError, match=r"sees its prefill end \(hf, llamacpp, .*sim.*\), not openai:http"):
        check_phase_clocks("openai:http://127.0.0.1:8080")
    engine = open_engine("openai:http://127.0.0.1:9")  # nothing listens: refused before any request is sent
    with pytest.raises(ConfigError, match="cannot switch clocks per phase"):
        engine.generate([Request(0, 0.0, "p", 3, 4)], on_decode=lambda: None)
    engine.close()
