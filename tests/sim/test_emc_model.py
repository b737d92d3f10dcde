"""The simulator's memory-clock axis and per-phase cost, checked against the physics and the measured shapes."""

from __future__ import annotations

import pytest

from edpilot.architectures import get_architecture
from edpilot.errors import ConfigError, DeviceError
from edpilot.sim import AnalyticModel, Levels, open_sim
from edpilot.sim.constants import BOARDS, DRAM_BACKGROUND_W, LLAMA_CPP_Q5_K_M, TRANSITION_STALL_S
from edpilot.sim.model import switch_delay_s
from edpilot.workload import Request


@pytest.fixture
def model():
    return AnalyticModel(BOARDS["orin-agx-32gb"], get_architecture("llama-3.2-1b"), LLAMA_CPP_Q5_K_M)


def test_the_top_level_is_todays_model(model):
    assert model.emc_levels_mhz == (204.0, 665.6, 2133.0, 3199.0)
    for f in (306.0, 930.75):
        assert model.expected_cost(f, [64] * 4, 70, emc_mhz=3199.0) == model.expected_cost(f, [64] * 4, 70)
        assert model.idle_power_w(f, emc_mhz=3199.0) == model.idle_power_w(f)


def test_decode_slows_with_the_memory_clock_within_the_measured_range(model):
    """Decode at batch 1 is bound by bandwidth, which the memory clock scales (204.8 GB/s at 3199 MHz).

    Measured on Orin Nano/NX (arXiv 2606.16106): 2133 -> 3199 MHz shifts median latency by +11 % to +48 %.
    """
    top = model.expected_cost(930.75, [64], 70, emc_mhz=3199.0).service_s
    mid = model.expected_cost(930.75, [64], 70, emc_mhz=2133.0).service_s
    low = model.expected_cost(930.75, [64], 70, emc_mhz=204.0).service_s
    assert 1.11 <= mid / top <= 1.48
    assert low / top > 5  # 204 MHz leaves 13 GB/s


def test_compute_bound_prefill_hardly_cares(model):
    ttft = [model.expected_cost(930.75, [2048] * 8, 1, emc_mhz=emc).ttft_s for emc in (2133.0, 3199.0)]
    assert ttft[0] / ttft[1] < 1.05


def test_a_lower_memory_clock_lowers_idle_power_by_the_dram_table(model):
    table = dict(DRAM_BACKGROUND_W)
    drop = model.idle_power_w(930.75) - model.idle_power_w(930.75, emc_mhz=204.0)
    assert drop == pytest.approx(table[3199.0] - table[204.0])
    assert model.idle_power_w(930.75, emc_mhz=665.6) < model.idle_power_w(930.75, emc_mhz=2133.0)


def test_levels_must_be_the_boards(model):
    with pytest.raises(ConfigError, match="1600 MHz is not a memory clock level"):
        model.expected_cost(930.75, [64], 70, emc_mhz=1600.0)


def test_switch_delay_is_the_longer_of_the_knobs_that_change():
    assert switch_delay_s(Levels(930.75, 3199.0), Levels(930.75, 3199.0)) == 0.0
    assert switch_delay_s(Levels(930.75, 3199.0), Levels(306.0, 3199.0)) == pytest.approx(0.005)
    assert switch_delay_s(Levels(930.75, 3199.0), Levels(930.75, 2133.0)) == pytest.approx(0.008)
    assert switch_delay_s(Levels(930.75, 3199.0), Levels(306.0, 665.6)) == pytest.approx(0.008)


def test_one_level_for_both_phases_costs_exactly_the_batch(model):
    levels = Levels(612.0, 2133.0)
    whole = model.expected_cost(612.0, [100] * 4, 70, emc_mhz=2133.0)
    cost = model.phase_cost(levels, levels, [100] * 4, 70).batch_cost()
    assert cost.service_s == pytest.approx(whole.service_s) and cost.energy_j == pytest.approx(whole.energy_j)
    assert cost.ttft_s == pytest.approx(whole.ttft_s)


def test_per_phase_levels_pay_the_switch(model):
    fast, slow = Levels(930.75, 3199.0), Levels(306.0, 2133.0)
    prompts = [1500] * 4
    cost = model.phase_cost(fast, slow, prompts, 70)
    assert cost.stall_s == pytest.approx(2 * TRANSITION_STALL_S)
    pre_fast = model.expected_cost(930.75, prompts, 1, emc_mhz=3199.0)
    pre_slow = model.expected_cost(306.0, prompts, 1, emc_mhz=2133.0)
    dec_slow = model.expected_cost(306.0, prompts, 70, emc_mhz=2133.0).service_s - pre_slow.service_s
    dec_fast = model.expected_cost(930.75, prompts, 70, emc_mhz=3199.0).service_s - pre_fast.service_s
    done = 0.008 / dec_fast  # the decode's first 8 ms still run at the prefill's levels
    assert cost.decode_s == pytest.approx(done * dec_fast + (1 - done) * dec_slow)
    assert pre_fast.service_s < cost.prefill_s < pre_slow.service_s  # the next prefill starts at decode levels
    assert cost.batch_cost().ttft_s == cost.prefill_s


def test_the_simulated_board_declares_and_turns_the_memory_clock():
    platform = open_sim("sim:orin-agx-64gb", seed=1)
    device, engine = platform.device, platform.engine
    gpu, emc = device.knobs()
    assert (gpu.name, emc.name) == ("gpu_mhz", "emc_mhz") and emc.levels == (204.0, 665.6, 2133.0, 3199.0)
    assert device.describe()["emc_levels_mhz"] == [204.0, 665.6, 2133.0, 3199.0]
    batch = [Request(request_id=0, arrival_s=0.0, prompt="a b", prompt_tokens=64, max_new_tokens=70)]
    start = platform.clock.now_s()
    engine.generate(batch)
    at_top = platform.clock.now_s() - start
    device.set_knob("emc_mhz", 665.6)
    assert device.knob_level("emc_mhz") == 665.6 and device.describe()["emc_mhz"] == 665.6
    start = platform.clock.now_s()
    engine.generate(batch)
    assert platform.clock.now_s() - start > 2 * at_top
    e0 = device.energy_j()
    platform.clock.sleep(10.0)
    idle_low_w = (device.energy_j() - e0) / 10.0
    device.restore()
    assert device.knob_level("emc_mhz") == 3199.0
    e0 = device.energy_j()
    platform.clock.sleep(10.0)
    assert (device.energy_j() - e0) / 10.0 - idle_low_w == pytest.approx(1.6 - 0.55)
    with pytest.raises(DeviceError, match="not a memory clock level"):
        device.set_knob("emc_mhz", 1600.0)


def test_read_only_and_profile_boards():
    read_only = open_sim("sim", read_only=True).device
    assert not read_only.knobs()[1].writable
    with pytest.raises(DeviceError, match="read-only"):
        read_only.set_knob("emc_mhz", 204.0)
