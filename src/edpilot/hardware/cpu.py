"""`--device cpu`: no clock knob and no energy meter, so real engines run anywhere (CI included).

Energy-based objectives stop with a clear error on it; `--objective latency` works.
"""

from __future__ import annotations

from dataclasses import asdict

from edpilot.clock import WallClock
from edpilot.errors import DeviceError
from edpilot.hardware.base import DeviceCapabilities, Knob, gpu_knob


class CpuDevice:
    """A device with no frequency levels (none is invented) and no meter."""

    name = "cpu"
    capabilities = DeviceCapabilities(
        can_set_clocks=False,
        read_only_reason="no clock knob: the cpu device is not tuned",
        dry_run=False,
        has_meter=False,
        meter_update_interval_ms=None,
    )

    def __init__(self) -> None:
        self.clock = WallClock()

    def freqs_mhz(self) -> tuple[float, ...]:
        """No levels: the CPU has no knob edpilot turns."""
        return ()

    def current_freq_mhz(self) -> None:
        """Not read: there is no GPU clock."""
        return None

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Refused: the CPU device has no knob."""
        raise DeviceError("the cpu device has no frequency knob")

    def knobs(self) -> tuple[Knob, ...]:
        """The GPU clock knob, without levels and read-only."""
        return (gpu_knob(self),)

    def knob_level(self, name: str) -> None:
        """Not read: there is no knob."""
        return None

    def set_knob(self, name: str, level: float) -> None:
        """Refused: the CPU device has no knob."""
        raise DeviceError(f"the cpu device has no knob {name!r}")

    def energy_j(self) -> None:
        """No meter."""
        return None

    def describe(self) -> dict[str, object]:
        """Backend name and what it lacks."""
        return {"backend": "cpu", "name": self.name, "freqs_mhz": [], **asdict(self.capabilities)}

    def restore(self) -> None:
        """Nothing to undo."""

    def close(self) -> None:
        """Nothing to stop."""
