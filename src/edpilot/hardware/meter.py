"""Energy meters: a background thread that samples power and integrates it into a monotonic joule counter."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from edpilot.clock import WallClock

log = logging.getLogger(__name__)


class SampledEnergyMeter:
    """Integrates `read_power_w()` with the trapezoid rule every `interval_s` on a daemon thread.

    `energy_j()` adds the stretch since the last sample at the last power, so readings are monotonic and
    current. A failed read is never papered over: from then on the energy is missing (`energy_j()` is None,
    so every window that spans it is None) and a warning says so. The first read happens here and raises.
    """

    def __init__(self, read_power_w: Callable[[], float], *, interval_s: float = 0.02, what: str = "power") -> None:
        self._read = read_power_w
        self.interval_s = interval_s
        self.what = what
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._clock = WallClock()
        self._t_s = self._clock.now_s()
        self._power_w = read_power_w()
        self._energy_j = 0.0
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._run, name="edpilot-power-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Signals go to the main thread, whose handlers restore clocks: a signal delivered here would only wake
        # this thread and leave the main thread asleep (apply --hold hung pinned in 2 of 96 double-signal tries).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        while self.failure is None and not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Take one reading now and integrate up to it; a failed read marks the energy missing from here on."""
        try:
            power_w = self._read()
        except Exception as exc:  # noqa: BLE001 - any failed read makes the energy missing, never held
            with self._lock:
                if self.failure is None:
                    self.failure = str(exc)
                    log.warning(
                        "%s reading failed (%s): energy is missing from now on (no value is held or guessed)",
                        self.what,
                        exc,
                    )
            return
        now_s = self._clock.now_s()
        with self._lock:
            if self.failure is not None:
                return
            self._energy_j += 0.5 * (self._power_w + power_w) * (now_s - self._t_s)
            self._t_s, self._power_w = now_s, power_w

    def energy_j(self) -> float | None:
        """Joules since the meter started (monotonic), or None once a reading has failed."""
        with self._lock:
            if self.failure is not None:
                return None
            return self._energy_j + self._power_w * (self._clock.now_s() - self._t_s)

    def close(self) -> None:
        """Stop the sampling thread."""
        self._stop.set()
        self._thread.join(timeout=1.0)
