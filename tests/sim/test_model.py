"""The analytic Orin model behaves as the physics it encodes says it should."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.architectures import get_architecture
from edpilot.sim import AnalyticModel, open_sim
from edpilot.sim.constants import BOARDS, GPU_VOLTAGE_CURVE, LLAMA_CPP_Q5_K_M
from edpilot.space import spread_levels


@pytest.fixture(params=["llama-3.2-1b", "qwen2.5-3b"])
def model(request):
    return AnalyticModel(BOARDS["orin-agx-64gb"], get_architecture(request.param), LLAMA_CPP_Q5_K_M)


def test_the_64gb_preset_has_jetpack_5s_levels():
    board = BOARDS["orin-agx-64gb"]
    assert len(board.freqs_mhz) == 13 and board.level_table == "JetPack 5"
    assert board.freqs_mhz[0] == 114.75 and board.freqs_mhz[-1] == 1300.5 and 828.75 in board.freqs_mhz
    assert board.assumed_freqs_mhz == ()


def test_the_32gb_preset_has_jetpack_6s_levels_with_the_papers_306_and_816():
    board = BOARDS["orin-agx-32gb"]
    assert board.level_table == "JetPack 6"
    assert board.freqs_mhz == (306.0, 408.0, 510.0, 612.0, 714.0, 816.0, 918.0, 930.75)
    assert np.allclose(np.diff(board.freqs_mhz[:-1]), 102.0)
    assert board.assumed_freqs_mhz == (930.75,)
    assert set(board.assumed_freqs_mhz) <= set(board.freqs_mhz)


def test_the_papers_grid_on_the_32gb_preset_holds_its_reported_levels():
    freqs = spread_levels(BOARDS["orin-agx-32gb"].freqs_mhz, 7)
    assert freqs == (306.0, 408.0, 510.0, 714.0, 816.0, 918.0, 930.75)
    assert {306.0, 816.0, 930.75} <= set(freqs)


def test_every_preset_level_is_ascending_and_in_the_voltage_curves_range():
    for board in BOARDS.values():
        assert list(board.freqs_mhz) == sorted(set(board.freqs_mhz))
        assert GPU_VOLTAGE_CURVE[0][0] <= board.freqs_mhz[0] and board.freqs_mhz[-1] <= GPU_VOLTAGE_CURVE[-1][0]


def test_service_time_falls_and_power_rises_with_frequency(model):
    costs = [model.expected_cost(f, [64] * 8, 70) for f in model.freqs_mhz]
    times = [c.service_s for c in costs]
    powers = [c.energy_j / c.service_s for c in costs]
    assert all(a >= b for a, b in zip(times, times[1:]))
    assert all(a < b for a, b in zip(powers, powers[1:]))
    idle = [model.idle_power_w(f) for f in model.freqs_mhz]
    assert all(a <= b for a, b in zip(idle, idle[1:]))


def test_prefill_scales_inversely_with_clock_when_compute_bound(model):
    lo, hi = 522.75, 1032.75
    t_lo = model.expected_cost(lo, [2048] * 8, 1).ttft_s
    t_hi = model.expected_cost(hi, [2048] * 8, 1).ttft_s
    assert t_lo / t_hi == pytest.approx(hi / lo, rel=0.1)


def test_batching_amortises_energy_per_request(model):
    per_req = [model.expected_cost(930.75, [64] * b, 70).energy_j / b for b in (1, 4, 16)]
    assert per_req[0] > per_req[1] > per_req[2]


def test_bigger_model_is_slower():
    small = open_sim("sim:orin-agx-64gb", model="llama-3.2-1b").model
    big = open_sim("sim:orin-agx-64gb", model="qwen2.5-3b").model
    assert big.expected_cost(930.75, [64] * 4, 70).service_s > 1.8 * small.expected_cost(930.75, [64] * 4, 70).service_s


def test_noise_is_seeded_and_small(model):
    a = [model.batch_cost(930.75, [64] * 4, 70, np.random.default_rng(5)).service_s for _ in range(2)]
    assert a[0] == a[1]
    mean = model.expected_cost(930.75, [64] * 4, 70).service_s
    rng = np.random.default_rng(1)
    samples = [model.batch_cost(930.75, [64] * 4, 70, rng).service_s for _ in range(400)]
    assert np.mean(samples) == pytest.approx(mean, rel=0.01)
    assert 0.005 < np.std(samples) / mean < 0.05
