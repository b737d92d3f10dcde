"""`--device cpu`: no clock knob and no energy meter, so real engines run anywhere (CI included).

Energy-based objectives stop with a clear error on it; `--objective latency` works.
"""

from __future__ import annotations

from edpilot.clock import WallClock
from edpilot.errors import DeviceError
from edpilot.hardware.base import DeviceCapabilities


class CpuDevice:
    """A device with no clock knob (no levels at all) and no meter."""

    name = "cpu"
    clock = WallClock()
    capabilities = DeviceCapabilities(can_set_clocks=False, read_only_reason="no clock knob", has_meter=False)

    def freqs_mhz(self) -> tuple[float, ...]:
        """No levels: the CPU's clock is not tuned."""
        return ()

    def current_freq_mhz(self) -> None:
        """Unknown: the cpu device reads no clock."""
        return None

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Refused: the CPU device has no knob."""
        raise DeviceError("the cpu device has no frequency knob")

    def energy_j(self) -> None:
        """No meter."""
        return None

    def describe(self) -> dict[str, object]:
        """Backend name and what it lacks."""
        return {"backend": "cpu", "name": self.name, "can_set_clocks": False, "energy_meter": False}

    def restore(self) -> None:
        """Nothing to undo."""

    def close(self) -> None:
        """Nothing to release."""
