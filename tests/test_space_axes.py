"""Named axes: Config as knob levels, ConfigSpace over Axis objects, decode levels for --phase-clocks."""

from __future__ import annotations

import pytest

from edpilot.errors import ConfigError
from edpilot.space import Axis, Config, ConfigSpace

GPU, EMC = (306.0, 612.0, 930.75), (665.6, 2133.0, 3199.0)


def test_config_keeps_its_knobs_in_knob_order_whatever_the_call_order():
    a = Config.of(4, emc_mhz=2133, gpu_mhz=816.0)
    b = Config.of(4, gpu_mhz=816.0, emc_mhz=2133.0)
    assert a == b and hash(a) == hash(b)
    assert a.knobs == (("gpu_mhz", 816.0), ("emc_mhz", 2133.0))
    assert a.level("emc_mhz") == 2133.0 and a.level("cpu_mhz") is None
    assert a.freq_mhz == 816.0
    assert str(a) == "(816 MHz GPU, 2133 MHz EMC, batch 4)"


def test_a_gpu_only_config_reads_as_before_and_a_level_of_none_is_left_out():
    assert str(Config.of(20, gpu_mhz=816.0)) == "(816 MHz, batch 20)"
    assert Config.of(4, gpu_mhz=None) == Config.of(4)
    assert Config.of(4).freq_mhz is None and str(Config.of(4)) == "(batch 4)"


def test_decode_levels_are_not_device_knobs():
    c = Config.of(8, gpu_mhz=930.75, emc_mhz=3199.0, decode_gpu_mhz=612.0, decode_emc_mhz=2133.0)
    assert c.device_levels() == {"gpu_mhz": 930.75, "emc_mhz": 3199.0}
    assert c.decode_levels() == {"gpu_mhz": 612.0, "emc_mhz": 2133.0}
    assert [n for n, _ in c.knobs] == ["gpu_mhz", "emc_mhz", "decode_gpu_mhz", "decode_emc_mhz"]
    assert Config.of(8, gpu_mhz=930.75).decode_levels() == {}


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ({"gpu": 500.0}, "named with its unit"),
        ({"gpu_mhz": 0.0}, "finite level > 0"),
        ({"gpu_mhz": float("nan")}, "finite level > 0"),
        ({"emc_mhz": float("inf")}, "finite level > 0"),
        ({"decode_mhz": 500.0}, "named with its unit"),
    ],
)
def test_config_refuses_bad_knobs(levels, message):
    with pytest.raises(ConfigError, match=message):
        Config.of(4, **levels)


def test_config_refuses_a_knob_twice_and_the_old_positional_form():
    with pytest.raises(ConfigError, match="named twice"):
        Config((("gpu_mhz", 500.0), ("gpu_mhz", 600.0)), 4)
    with pytest.raises(ConfigError, match="Config.of"):
        Config(500.0, 4)  # type: ignore[arg-type]


def test_three_axis_grid_iterates_gpu_major_then_emc_then_batch():
    space = ConfigSpace((Axis("gpu_mhz", GPU), Axis("emc_mhz", EMC)), (4, 8))
    configs = space.configs
    assert len(space) == len(configs) == 18
    assert configs[:3] == [
        Config.of(4, gpu_mhz=306.0, emc_mhz=665.6),
        Config.of(8, gpu_mhz=306.0, emc_mhz=665.6),
        Config.of(4, gpu_mhz=306.0, emc_mhz=2133.0),
    ]
    assert [space.index(c) for c in configs] == list(range(18))
    assert space.baseline() == Config.of(8, gpu_mhz=930.75, emc_mhz=3199.0)
    assert space.freqs_mhz == GPU and space.knob_names == ("gpu_mhz", "emc_mhz")


def test_three_axis_grid_validation_names_the_axis():
    space = ConfigSpace((Axis("gpu_mhz", GPU), Axis("emc_mhz", EMC)), (4, 8))
    with pytest.raises(ConfigError, match=r"emc_mhz 204 is not a level of the grid; levels: 665.6, 2133, 3199"):
        space.validate(Config.of(4, gpu_mhz=306.0, emc_mhz=204.0))
    with pytest.raises(ConfigError, match="emc_mhz the device's level is not a level"):
        space.validate(Config.of(4, gpu_mhz=306.0))
    assert Config.of(4, gpu_mhz=306.0) not in space and Config.of(4, gpu_mhz=306.0, emc_mhz=665.6) in space
    two = ConfigSpace.grid(GPU, (4,))
    with pytest.raises(ConfigError, match="no emc_mhz axis"):
        two.validate(Config.of(4, gpu_mhz=306.0, emc_mhz=665.6))


def test_the_two_axis_grid_is_the_old_grid():
    space = ConfigSpace.grid((900.0, 500.0, 500.0), (8, 2))
    assert space.axes == (Axis("gpu_mhz", (500.0, 900.0)),) and space.batch_sizes == (2, 8)
    assert space.configs == [Config.of(b, gpu_mhz=f) for f in (500.0, 900.0) for b in (2, 8)]
    no_clock = ConfigSpace.grid((None,), (1, 4))
    assert no_clock.configs == [Config.of(1), Config.of(4)] and no_clock.freqs_mhz == (None,)
    with pytest.raises(ConfigError, match="exactly one entry"):
        ConfigSpace.grid((None, 500.0), (1,))
    with pytest.raises(ConfigError, match="named twice"):
        ConfigSpace((Axis("gpu_mhz", GPU), Axis("gpu_mhz", GPU)), (1,))


def test_a_decode_axis_is_one_more_named_axis():
    space = ConfigSpace((Axis("gpu_mhz", GPU), Axis("decode_gpu_mhz", GPU)), (4,))
    assert len(space) == 9
    c = space.configs[1]
    assert c.device_levels() == {"gpu_mhz": 306.0} and c.decode_levels() == {"gpu_mhz": 612.0}
