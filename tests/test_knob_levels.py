"""`--emcs all|LIST`: the memory-clock levels a grid option picks (parsing only; the grid takes them later)."""

from __future__ import annotations

import pytest

from edpilot.errors import ConfigError
from edpilot.space import parse_knob_levels

EMC = (204.0, 665.6, 2133.0, 3199.0)


def test_all_and_lists_pick_exact_levels():
    assert parse_knob_levels("all", EMC, option="--emcs") == EMC
    assert parse_knob_levels(" all ", EMC[::-1], option="--emcs") == EMC
    assert parse_knob_levels("3199,665.6", EMC, option="--emcs") == (665.6, 3199.0)
    assert parse_knob_levels("665.5, 3199, 3199", EMC, option="--emcs") == (665.6, 3199.0)


@pytest.mark.parametrize(
    "text,words",
    [
        ("1600", r"--emcs: 1600 MHz is not a level .*nearest: 2133.*204, 665.6, 2133, 3199"),
        ("fast", r"--emcs must be a comma-separated list"),
        ("", r"^--emcs is empty"),
        ("nan", r"--emcs must hold finite numbers"),
    ],
)
def test_bad_lists_say_what_is_wrong(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_knob_levels(text, EMC, option="--emcs")


def test_a_knob_that_cannot_be_turned_cannot_be_searched():
    with pytest.raises(ConfigError, match="--emcs cannot be searched: debugfs is not mounted"):
        parse_knob_levels("all", EMC, option="--emcs", read_only_reason="debugfs is not mounted")
    with pytest.raises(ConfigError, match="lists no levels"):
        parse_knob_levels("all", (), option="--emcs")
