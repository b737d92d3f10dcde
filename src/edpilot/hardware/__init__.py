"""Hardware backends behind one `Device` interface (see `edpilot.hardware.base`).

    device = open_device("jetson", sysfs_root="/", rails=None, dry_run=False)
    device = open_device("nvml:0", read_only=True)
    device = open_device("cpu")

Every change a device makes is saved first (`edpilot.hardware.state`) and undone by `restore()`;
`restore_saved()` undoes what a killed run left. Raises DeviceError / PermissionDenied / ConfigError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edpilot.errors import ConfigError, DeviceError
from edpilot.hardware.base import Device
from edpilot.hardware.state import StateStore

__all__ = ["REAL_DEVICE_KINDS", "Device", "open_device", "restore_saved"]

REAL_DEVICE_KINDS = ("jetson", "nvml[:INDEX]", "cpu")


def open_device(
    spec: str,
    *,
    sysfs_root: str | Path | None = None,
    rails: list[str] | None = None,
    dry_run: bool = False,
    read_only: bool = False,
    state_store: StateStore | None = None,
) -> Device:
    """Open a real device from its spec string."""
    kind, _, arg = spec.partition(":")
    if kind == "jetson":
        from edpilot.hardware.jetson import JetsonDevice

        if arg:
            raise ConfigError(f"--device jetson takes no argument, got {spec!r}")
        return JetsonDevice(root=sysfs_root, rails=rails, dry_run=dry_run, read_only=read_only, state_store=state_store)
    if kind == "nvml":
        from edpilot.hardware.nvml import NvmlDevice

        try:
            index = int(arg) if arg else 0
        except ValueError:
            raise ConfigError(f"--device nvml:INDEX needs a GPU index, got {spec!r}") from None
        return NvmlDevice(index, read_only=read_only or dry_run, state_store=state_store)
    if kind == "cpu":
        from edpilot.hardware.cpu import CpuDevice

        return CpuDevice()
    raise ConfigError(f"unknown device {spec!r}; choose one of: sim[:BOARD], {', '.join(REAL_DEVICE_KINDS)}")


def restore_saved(store: StateStore | None = None) -> list[dict[str, Any]]:
    """Undo every saved state (left by crashed or `apply`-without-`--hold` runs); return what was undone."""
    store = store or StateStore()
    undone = []
    for saved in store.all():
        backend = saved.get("backend")
        if backend == "jetson":
            from edpilot.hardware.jetson import restore_jetson

            restore_jetson(saved)
        elif backend == "nvml":
            from edpilot.hardware.nvml import restore_nvml

            restore_nvml(saved)
        else:
            raise DeviceError(f"unknown backend {backend!r} in state file {store.path(str(saved.get('key')))}")
        store.remove(str(saved["key"]))
        undone.append(saved)
    return undone
