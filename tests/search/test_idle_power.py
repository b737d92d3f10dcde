"""Idle power between batches: learned per level from idle stretches, fitted over f with the right shape."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.backends import open_backends
from edpilot.search.hardware import IdlePower

LEVELS_MHZ = np.array([114.75, 318.75, 522.75, 726.75, 930.75, 1134.75, 1300.5])


def simulated_idle_w(freq_mhz: float) -> float:
    """The simulated 64GB Orin's module power with the GPU pinned at `freq_mhz` and idle."""
    return open_backends(device="sim:orin-agx-64gb", seed=0).device.model.idle_power_w(freq_mhz)


def test_three_levels_follow_the_voltage_floor_then_the_rise():
    """Flat at low clocks, rising above: a line through 114.75 and 1300.5 MHz would overstate 522.75 MHz by 4 %."""
    idle = IdlePower(LEVELS_MHZ, None)
    for f in (114.75, 318.75, 1300.5):
        idle.add(f, idle_j=simulated_idle_w(f) * 30.0, idle_s=30.0)
    predicted = idle.predict()
    for f, watts in zip(LEVELS_MHZ, predicted):
        assert watts == pytest.approx(simulated_idle_w(f), rel=0.015)


def test_one_level_is_a_constant_and_two_a_line_through_them():
    idle = IdlePower(LEVELS_MHZ, None)
    assert not idle.predict().any()  # nothing learned yet: 0, not a guess
    idle.add(318.75, idle_j=80.0, idle_s=10.0)
    assert np.allclose(idle.predict(), 8.0)
    idle.add(1300.5, idle_j=100.0, idle_s=10.0)
    line = 8.0 + 2.0 * (LEVELS_MHZ - 318.75) / (1300.5 - 318.75)
    assert np.allclose(idle.predict(), np.maximum(line, 0.0))


def test_a_fit_that_bends_down_falls_back_to_a_line():
    idle = IdlePower(LEVELS_MHZ, None)
    for f, watts in ((114.75, 6.0), (726.75, 9.0), (1300.5, 9.5)):  # concave: not a pinned GPU's shape
        idle.add(f, idle_j=watts * 10.0, idle_s=10.0)
    slope, intercept = np.polyfit([114.75, 726.75, 1300.5], [6.0, 9.0, 9.5], 1)
    assert np.allclose(idle.predict(), slope * LEVELS_MHZ + intercept)


def test_a_given_idle_power_wins_over_learning():
    idle = IdlePower(LEVELS_MHZ, 7.0)
    idle.add(318.75, idle_j=80.0, idle_s=10.0)
    assert np.allclose(idle.predict(), 7.0)
