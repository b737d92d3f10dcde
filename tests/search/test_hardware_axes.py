"""The search's hardware model over named axes: features and prior from the space's axes, idle power per knob."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.search.hardware import CURVATURE_SD, IdlePower, features, idle_key, prior
from edpilot.space import Axis, Config, ConfigSpace

FREQS = (306.0, 510.0, 714.0, 930.75)
EMCS = (665.6, 2133.0, 3199.0)
BATCHES = (4, 8, 16, 28)


def two_axis_columns(space: ConfigSpace) -> np.ndarray:
    """The two-axis features as they were written before named axes: 1, x_b, x_f, x_b², x_f², x_b·x_f."""
    xb = np.log([c.batch_size for c in space]) - np.mean(np.log(space.batch_sizes))
    xf = np.log([c.freq_mhz for c in space]) - np.mean(np.log(space.freqs_mhz))
    return np.column_stack([np.ones(len(space)), xb, xf, xb**2, xf**2, xb * xf])


def test_two_axes_give_exactly_the_old_columns_and_prior():
    space = ConfigSpace.grid(FREQS, BATCHES)
    assert np.array_equal(features(space), two_axis_columns(space))
    mean, sd = prior(space, slope_b=0.5, slope_f=-0.5, slope_sd=0.25)
    assert mean.tolist() == [0.0, 0.5, -0.5, 0.0, 0.0, 0.0]
    assert sd.tolist() == [10.0, 0.25, 0.25, CURVATURE_SD, CURVATURE_SD, CURVATURE_SD]


def test_single_level_axes_add_no_columns():
    one_freq = ConfigSpace.grid((930.75,), BATCHES)
    assert features(one_freq).shape == (4, 3)  # 1, x_b, x_b²
    no_clock = ConfigSpace.grid((None,), BATCHES)
    assert np.array_equal(features(no_clock), features(one_freq))
    one_batch = ConfigSpace((Axis("gpu_mhz", FREQS), Axis("emc_mhz", (3199.0,))), (4,))
    assert features(one_batch).shape == (4, 3)  # 1, x_f, x_f²


def test_three_axes_add_the_memory_clock_its_square_and_both_cross_terms():
    space = ConfigSpace((Axis("gpu_mhz", FREQS), Axis("emc_mhz", EMCS)), BATCHES)
    phi = features(space)
    assert phi.shape == (len(space), 1 + 3 + 3 + 3)
    xb = np.log([c.batch_size for c in space]) - np.mean(np.log(BATCHES))
    xf = np.log([c.level("gpu_mhz") for c in space]) - np.mean(np.log(FREQS))
    xe = np.log([c.level("emc_mhz") for c in space]) - np.mean(np.log(EMCS))
    expected = np.column_stack([np.ones(len(space)), xb, xf, xe, xb**2, xf**2, xe**2, xb * xf, xb * xe, xf * xe])
    assert np.allclose(phi, expected)
    mean, sd = prior(space, slope_b=0.5, slope_f=-0.5, slope_sd=0.25)
    assert mean.tolist() == [0.0, 0.5, -0.5, -0.5, *([0.0] * 6)]  # the memory clock: the GPU's slope
    assert sd.tolist() == [10.0, 0.25, 0.25, 0.25, *([CURVATURE_SD] * 6)]


def test_positions_are_per_axis_indices_then_batch():
    space = ConfigSpace((Axis("gpu_mhz", FREQS), Axis("emc_mhz", EMCS)), BATCHES)
    pos = space.positions()
    c = Config.of(16, gpu_mhz=714.0, emc_mhz=665.6)
    assert pos[space.index(c)].tolist() == [2, 0, 2]
    assert ConfigSpace.grid(FREQS, BATCHES).positions()[5].tolist() == [1, 1]


def test_idle_power_is_learned_per_memory_clock_and_pooled_where_unseen():
    space = ConfigSpace((Axis("gpu_mhz", (500.0, 1000.0)), Axis("emc_mhz", (665.6, 3199.0))), (4,))
    configs = space.configs
    idle = IdlePower(np.array([c.freq_mhz for c in configs]), None, [idle_key(c) for c in configs])
    low, high = (("emc_mhz", 665.6),), (("emc_mhz", 3199.0),)
    idle.add(500.0, idle_j=60.0, idle_s=10.0, others=low)
    idle.add(1000.0, idle_j=80.0, idle_s=10.0, others=low)
    watts = dict(zip(configs, idle.predict(), strict=True))
    assert watts[Config.of(4, gpu_mhz=500.0, emc_mhz=665.6)] == pytest.approx(6.0)
    assert watts[Config.of(4, gpu_mhz=1000.0, emc_mhz=665.6)] == pytest.approx(8.0)
    assert watts[Config.of(4, gpu_mhz=1000.0, emc_mhz=3199.0)] == pytest.approx(8.0)  # unseen: the pooled fit
    idle.add(500.0, idle_j=90.0, idle_s=10.0, others=high)
    watts = dict(zip(configs, idle.predict(), strict=True))
    assert watts[Config.of(4, gpu_mhz=1000.0, emc_mhz=3199.0)] == pytest.approx(9.0)  # its own constant
    assert watts[Config.of(4, gpu_mhz=500.0, emc_mhz=665.6)] == pytest.approx(6.0)
