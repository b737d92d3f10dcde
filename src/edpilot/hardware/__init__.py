"""Hardware backends behind one `Device` interface (see `edpilot.hardware.base`)."""

from edpilot.hardware.base import Device

__all__ = ["Device"]
