"""Turning a config's knobs on a device: every device knob the config sets, in the order the device declares.

`decode_*` levels are not device knobs (the engine switches to them for decode, --phase-clocks): they are left
to the engine. A knob the device cannot turn is not touched (a read-only device serves at its own levels; the
grid never searches such a knob — `edpilot.backends.grid` refuses it with the reason); a dry run only logs.
"""

from __future__ import annotations

from edpilot.errors import DeviceError
from edpilot.hardware import Device
from edpilot.space import Config


def set_levels(device: Device, config: Config) -> None:
    """Set every device knob of `config` through `device.set_knob`, GPU first (the device's declared order)."""
    wanted = config.device_levels()
    dry_run = device.capabilities.dry_run
    for knob in device.knobs():
        level = wanted.pop(knob.name, None)
        if level is not None and (knob.writable or dry_run):
            device.set_knob(knob.name, level)
    if wanted:
        raise DeviceError(f"{device.name} has no knob {', '.join(wanted)}; its knobs: {_names(device)}")


def _names(device: Device) -> str:
    return ", ".join(k.name for k in device.knobs()) or "none"
