"""Windows aligned to counter updates: a fake counter that ticks every 100 ms on a virtual clock."""

from __future__ import annotations

import math

import pytest

from edpilot.clock import VirtualClock
from edpilot.serving.window import TICK_POLL_S, EnergyWindow, wait_for_tick

BUSY_W, IDLE_W = 300.0, 100.0


class TickingCounter:
    """Energy counter that updates every `interval_s` (offset `phase_s`) with the energy spent up to the update.

    Power is BUSY_W while `busy` else IDLE_W; the true energy is integrated exactly as the clock moves.
    """

    def __init__(self, clock: VirtualClock, *, interval_s: float = 0.1, phase_s: float = 0.037) -> None:
        self.clock, self.interval_s, self.phase_s = clock, interval_s, phase_s
        self.busy = False
        self._t_s = 0.0
        self._true_j = 0.0
        self._history: list[tuple[float, float]] = [(0.0, 0.0)]
        self.advance()  # idle since time 0

    def advance(self) -> None:
        now_s = self.clock.now_s()
        if now_s > self._t_s:
            self._true_j += (BUSY_W if self.busy else IDLE_W) * (now_s - self._t_s)
            self._t_s = now_s
            self._history.append((now_s, self._true_j))

    def set_busy(self, busy: bool) -> None:
        self.advance()
        self.busy = busy

    def true_j(self, t_s: float) -> float:
        """Exact energy at time t_s (piecewise linear between the recorded points)."""
        if t_s <= 0:
            return 0.0
        for (t0, e0), (t1, e1) in zip(self._history, self._history[1:]):
            if t0 <= t_s <= t1:
                return e0 + (e1 - e0) * (t_s - t0) / (t1 - t0)
        return self._history[-1][1]

    def energy_j(self) -> float:
        self.advance()
        last_tick_s = math.floor((self.clock.now_s() - self.phase_s) / self.interval_s) * self.interval_s
        return self.true_j(last_tick_s + self.phase_s)


def work(counter: TickingCounter, clock: VirtualClock, seconds: float) -> None:
    counter.set_busy(True)
    clock.sleep(seconds)
    counter.set_busy(False)


def test_wait_for_tick_returns_at_the_next_update():
    clock = VirtualClock(10.0)
    counter = TickingCounter(clock)
    t_s, energy_j = wait_for_tick(counter, clock, timeout_s=0.3)
    assert 10.037 <= t_s <= 10.037 + TICK_POLL_S + 1e-9
    assert energy_j == pytest.approx(10.037 * IDLE_W)


def test_wait_for_tick_gives_none_when_the_counter_never_changes():
    class Frozen:
        def energy_j(self) -> float:
            return 5.0

    clock = VirtualClock()
    assert wait_for_tick(Frozen(), clock, timeout_s=0.3) is None
    assert clock.now_s() == pytest.approx(0.3, abs=2 * TICK_POLL_S)


@pytest.mark.parametrize("work_s", [0.95, 1.0, 1.02, 1.55, 2.08])
def test_aligned_window_starts_and_ends_on_ticks_and_its_energy_is_exact(work_s):
    clock = VirtualClock(3.0)
    counter = TickingCounter(clock)
    w = EnergyWindow(counter, clock, update_interval_ms=100, align=True).begin()
    work(counter, clock, work_s)
    w.end()
    assert w.aligned_start and w.aligned_end
    for t_s in (w.start_s, w.end_s):  # each end within one poll after an update
        since_tick_s = (t_s - 0.037) % 0.1
        assert since_tick_s <= TICK_POLL_S + 1e-9
    assert 0 <= w.tail_s <= 0.1 + TICK_POLL_S
    exact_j = counter.true_j(w.end_s) - counter.true_j(w.start_s)
    assert abs(w.energy_j - exact_j) <= 2 * TICK_POLL_S * BUSY_W  # only the polling delay at each end
    busy_j = BUSY_W * work_s + IDLE_W * w.tail_s
    assert w.energy_j == pytest.approx(busy_j, abs=2 * TICK_POLL_S * BUSY_W)


def test_unaligned_window_reads_stale_counter_values():
    """The same work without alignment: the counter is up to one update stale at each end."""
    clock = VirtualClock(3.05)
    counter = TickingCounter(clock)
    w = EnergyWindow(counter, clock, update_interval_ms=100).begin()
    work(counter, clock, 1.02)
    w.end()
    assert not (w.aligned_start or w.aligned_end)
    exact_j = counter.true_j(w.end_s) - counter.true_j(w.start_s)
    assert exact_j == pytest.approx(306.0)
    assert abs(w.energy_j - exact_j) > 5.0  # 3.05 is 13 ms after a tick, 4.07 is 33 ms after one


def test_align_without_an_update_interval_is_off():
    clock = VirtualClock()
    counter = TickingCounter(clock)
    w = EnergyWindow(counter, clock, align=True).begin()
    assert not w.align and not w.aligned_start and w.start_s == 0.0
