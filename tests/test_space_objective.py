"""Configs, the grid, and objectives."""

from __future__ import annotations

import pytest

from edpilot.errors import ConfigError
from edpilot.objective import Objective, Observation, parse_objective
from edpilot.sim.constants import ORIN_GPU_LEVELS_MHZ
from edpilot.space import Config, ConfigSpace, match_levels, parse_batch_sizes, parse_config, spread_levels


def obs(energy: float | None, latency: float) -> Observation:
    return Observation(
        requests=1,
        energy_per_request_j=energy,
        mean_latency_s=latency,
        p95_latency_s=latency,
        mean_ttft_s=None,
        power_w=None,
        mean_batch_s=latency,
        energy_per_batch_j=energy,
        window_s=latency,
        keeps_up=True,
    )


def test_paper_grid_on_the_32gb_board_ends_at_the_paper_baseline():
    levels = [f for f in ORIN_GPU_LEVELS_MHZ if f <= 930.75]
    freqs = spread_levels(levels, 7)
    assert len(freqs) == 7 and freqs[0] == 114.75 and freqs[-1] == 930.75
    assert set(freqs) <= set(levels)
    space = ConfigSpace.grid(freqs, (4, 8, 12, 16, 20, 24, 28))
    assert len(space) == 49
    assert space.baseline() == Config.of(28, gpu_mhz=930.75)
    assert space.index(space.configs[17]) == 17


def test_levels_are_matched_exactly_or_refused():
    assert match_levels([930.75, 1300.6], ORIN_GPU_LEVELS_MHZ) == (930.75, 1300.5)
    with pytest.raises(ConfigError, match="nearest: 828.75"):
        match_levels([816], ORIN_GPU_LEVELS_MHZ)


def test_grid_validation():
    space = ConfigSpace.grid((500.0, 900.0), (1, 4))
    with pytest.raises(ConfigError, match="not a frequency of the grid"):
        space.validate(Config.of(1, gpu_mhz=700.0))
    with pytest.raises(ConfigError, match="batch size 3 is not in the grid"):
        space.validate(Config.of(3, gpu_mhz=500.0))
    with pytest.raises(ConfigError):
        Config.of(0, gpu_mhz=500.0)
    with pytest.raises(ConfigError):
        ConfigSpace.grid((), (1,))


@pytest.mark.parametrize("text", ["4,x", "0,4", "2.5", ""])
def test_bad_batch_lists(text):
    with pytest.raises(ConfigError):
        parse_batch_sizes(text)


def test_parse_config():
    assert parse_config("930.75,28") == Config.of(28, gpu_mhz=930.75)
    for bad in ("930.75", "930,2.5", "a,b"):
        with pytest.raises(ConfigError):
            parse_config(bad)


def test_objective_values():
    o = obs(energy=4.0, latency=2.0)
    base = obs(energy=8.0, latency=1.0)
    assert parse_objective("edp").cost(o) == 8.0
    assert parse_objective("ed2p").cost(o) == 16.0
    assert parse_objective("energy").cost(o) == 4.0
    assert parse_objective("latency").cost(o) == 2.0
    assert parse_objective("weighted:0.5").cost(o, base) == pytest.approx(0.5 * 0.5 + 0.5 * 2.0)
    assert parse_objective("weighted:0.5").cost(base, base) == pytest.approx(1.0)
    assert parse_objective("weighted:1").cost(o, base) == pytest.approx(0.5)


@pytest.mark.parametrize("text", ["edpp", "weighted:2", "weighted:x", "edp:3", ""])
def test_bad_objectives(text):
    with pytest.raises(ConfigError):
        parse_objective(text)


def test_energy_objectives_need_a_meter():
    with pytest.raises(ConfigError, match="energy meter"):
        Objective("edp").cost(obs(None, 1.0))
    assert Objective("latency").cost(obs(None, 1.5)) == 1.5
