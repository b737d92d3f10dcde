"""The measurement window: energy over a stretch, missing readings stay missing, meter updates counted."""

from __future__ import annotations

import pytest

from edpilot.clock import VirtualClock
from edpilot.serving import EnergyWindow


class ScriptedMeter:
    """A joule counter whose readings are given in advance (None: a read that failed)."""

    def __init__(self, readings):
        self.readings = list(readings)

    def energy_j(self):
        return self.readings.pop(0)


def test_energy_and_duration_of_a_block():
    clock = VirtualClock(5.0)
    with EnergyWindow(ScriptedMeter([100.0, 130.5]), clock, update_interval_ms=100) as w:
        clock.sleep(3.0)
    assert w.energy_j == pytest.approx(30.5)
    assert w.duration_s == pytest.approx(3.0)
    assert w.meter_updates == pytest.approx(30.0)


@pytest.mark.parametrize("readings", [[None, 10.0], [10.0, None], [None, None]])
def test_a_missing_reading_is_missing_not_zero(readings):
    clock = VirtualClock()
    with EnergyWindow(ScriptedMeter(readings), clock) as w:
        clock.sleep(1.0)
    assert w.energy_j is None and w.meter_updates is None


def test_begin_end_across_events_and_misuse():
    clock = VirtualClock()
    w = EnergyWindow(ScriptedMeter([1.0, 4.0]), clock)
    with pytest.raises(RuntimeError):
        w.end()
    w.begin()
    clock.sleep(2.0)
    w.end()
    assert (w.energy_j, w.duration_s) == (3.0, 2.0)


def test_an_exception_leaves_the_window_open():
    clock = VirtualClock()
    w = EnergyWindow(ScriptedMeter([1.0, 2.0]), clock)
    with pytest.raises(KeyError), w:
        raise KeyError("boom")
    with pytest.raises(RuntimeError):
        _ = w.duration_s


def test_a_meter_that_did_not_advance_is_not_a_zero_energy_winner():
    clock = VirtualClock()
    with EnergyWindow(ScriptedMeter([7.0, 7.0]), clock) as w:
        clock.sleep(0.2)
    assert w.energy_j is None
