"""Energy meters: a background thread that samples power and integrates it into a monotonic joule counter."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edpilot.clock import WallClock

log = logging.getLogger(__name__)


class SampledEnergyMeter:
    """Integrates `read_power_w()` with the trapezoid rule every `interval_s` on a daemon thread.

    `energy_j()` adds the stretch since the last sample at the last power, so readings are monotonic
    and current. Read errors stop nothing: the last good power is held and the error is logged once.
    """

    def __init__(self, read_power_w: Callable[[], float], *, interval_s: float = 0.02) -> None:
        self._read = read_power_w
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._clock = WallClock()
        self._t_s = self._clock.now_s()
        self._power_w = read_power_w()
        self._energy_j = 0.0
        self._errors = 0
        self._thread = threading.Thread(target=self._run, name="edpilot-power-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Take one reading now and integrate up to it."""
        try:
            power_w = self._read()
        except Exception as exc:  # noqa: BLE001 - a sampler must not die on one bad read
            if self._errors == 0:
                log.warning("power reading failed (holding the last value): %s", exc)
            self._errors += 1
            power_w = self._power_w
        now_s = self._clock.now_s()
        with self._lock:
            self._energy_j += 0.5 * (self._power_w + power_w) * (now_s - self._t_s)
            self._t_s, self._power_w = now_s, power_w

    def energy_j(self) -> float:
        """Joules since the meter started (monotonic)."""
        with self._lock:
            return self._energy_j + self._power_w * (self._clock.now_s() - self._t_s)

    def close(self) -> None:
        """Stop the sampling thread."""
        self._stop.set()
        self._thread.join(timeout=1.0)
