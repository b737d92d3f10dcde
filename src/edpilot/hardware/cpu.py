"""`--device cpu`: no clock knob and no energy meter, so real engines run anywhere (CI included).

Energy-based objectives stop with a clear error on it; `--objective latency` works.
"""

from __future__ import annotations

from edpilot.errors import DeviceError


class CpuDevice:
    """A device with one nominal level and no meter."""

    read_only = True
    name = "cpu"

    def freqs_mhz(self) -> tuple[float, ...]:
        """One nominal level (the CPU is not tuned)."""
        return (1.0,)

    def current_freq_mhz(self) -> float:
        """The nominal level."""
        return 1.0

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
