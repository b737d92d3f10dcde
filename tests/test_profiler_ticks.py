"""Profiler samples on a counter that ticks, and idle power that settles."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from edpilot.cli import app
from edpilot.clock import VirtualClock
from edpilot.hardware.base import DeviceCapabilities
from edpilot.profiler import idle_metadata, measure_sample, settle_idle
from edpilot.workload import Workload
from tests.conftest import write_synthetic_profile
from tests.serving.test_window_ticks import BUSY_W, TickingCounter


class TickingDevice:
    """A read-only device whose energy counter ticks every 100 ms (virtual clock)."""

    name = "ticking"

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.counter = TickingCounter(clock)
        self.capabilities = DeviceCapabilities(
            can_set_clocks=False, read_only_reason="test", meter_update_interval_ms=100
        )

    def energy_j(self) -> float:
        return self.counter.energy_j()


class BusyEngine:
    """Each batch takes `batch_s` of virtual time at BUSY_W."""

    needs_warmup = False

    def __init__(self, device: TickingDevice, batch_s: float) -> None:
        self.device, self.batch_s = device, batch_s

    def generate(self, batch):
        self.device.counter.set_busy(True)
        self.device.clock.sleep(self.batch_s)
        self.device.counter.set_busy(False)
        return []


@pytest.mark.parametrize("batch_s", [0.13, 0.27, 0.61, 1.07])
def test_aligned_sample_measures_batch_energy_within_half_a_percent(batch_s):
    clock = VirtualClock(1.013)
    device = TickingDevice(clock)
    batch = Workload(arrivals="saturated").requests(4, np.random.default_rng(0))
    engine = BusyEngine(device, batch_s)
    aligned = measure_sample(device, engine, batch, freq_mhz=None)
    assert aligned.latency_s == pytest.approx(batch_s, rel=0.005)
    assert aligned.energy_j == pytest.approx(BUSY_W * batch_s, rel=0.005)


def test_aligned_samples_spread_less_than_unaligned_ones():
    batch = Workload(arrivals="saturated").requests(4, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    before, after = [], []
    for start_s in rng.uniform(0, 10, 20):
        for align, out in ((False, before), (True, after)):
            device = TickingDevice(VirtualClock(float(start_s)))
            out.append(measure_sample(device, BusyEngine(device, 0.27), batch, freq_mhz=None, align=align).energy_j)
    cv = lambda xs: float(np.std(xs) / np.mean(xs))  # noqa: E731
    assert cv(after) < 0.002
    assert cv(before) > 5 * cv(after)


class DecayingIdle:
    """Idle power falling from `start_w` to `floor_w` with time constant `tau_s`; exact energy, no ticks."""

    name = "decaying"

    def __init__(self, clock: VirtualClock, *, start_w=121.7, floor_w=78.6, tau_s=10.0, slope_w_per_s=0.0) -> None:
        self.clock, self.start_w, self.floor_w, self.tau_s, self.slope = clock, start_w, floor_w, tau_s, slope_w_per_s
        self.capabilities = DeviceCapabilities(can_set_clocks=False, read_only_reason="test")

    def energy_j(self) -> float:
        t = self.clock.now_s()
        drop_w = self.start_w - self.floor_w
        return self.floor_w * t + drop_w * self.tau_s * (1 - math.exp(-t / self.tau_s)) - 0.5 * self.slope * t * t


def test_idle_settles_once_power_stops_falling():
    device = DecayingIdle(VirtualClock())
    settle = settle_idle(device)
    assert settle.settled
    assert settle.readings_w[0] > 110  # right after load
    assert 26.0 <= settle.settle_s <= 36.0  # 3 readings within 1 %: exp(-t/10) * 43.1 * 0.33 <= 0.79
    meta = idle_metadata(DecayingIdle(VirtualClock()))
    assert meta["idle_settled"] is True
    assert meta["idle_power_w"] == pytest.approx(78.6, rel=0.03)
    assert meta["idle_settle_s"] == pytest.approx(settle.settle_s, abs=0.05)


def test_idle_that_keeps_falling_stops_at_the_bound_and_says_so():
    device = DecayingIdle(VirtualClock(), start_w=100.0, floor_w=100.0, slope_w_per_s=0.5)
    settle = settle_idle(device, max_s=20.0)
    assert not settle.settled
    assert settle.settle_s == pytest.approx(20.0)
    assert len(settle.readings_w) == 10
    assert settle.readings_w[-1] == pytest.approx(100.0 - 0.5 * 19.0)


def test_idle_already_flat_settles_after_three_readings():
    device = DecayingIdle(VirtualClock(), start_w=78.6)
    settle = settle_idle(device)
    assert settle.settled and settle.settle_s == pytest.approx(6.0)
    assert settle.readings_w == pytest.approx((78.6, 78.6, 78.6))


def test_run_header_records_how_idle_power_was_settled(tmp_path):
    profile = write_synthetic_profile(
        tmp_path / "p.csv", lambda f, b: (1.0 + 0.1 * b, 50.0 + 5 * b), freqs_mhz=[1980.0], batch_sizes=[1, 4]
    )
    text = profile.read_text().replace(
        "# idle_power_w: 5.0", "# idle_power_w: 121.7\n# idle_settle_s: 6.6\n# idle_settled: True"
    )
    profile.write_text(text)
    log = tmp_path / "run.jsonl"
    args = ["tune", "--device", "sim", "--profile", str(profile), "--budget", "1", "--output", str(log), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    extra = json.loads(log.read_text().splitlines()[0])["extra"]
    assert (extra["idle_power_w"], extra["idle_settle_s"], extra["idle_settled"]) == ("121.7", "6.6", "True")
