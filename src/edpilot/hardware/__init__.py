"""Hardware backends behind one `Device` interface (see `edpilot.hardware.base`), chosen by a spec string.

    device = open_device("jetson", DeviceOptions(sysfs_root="/", rails=("VDD_GPU_SOC",), dry_run=True))
    device = open_device("nvml:0", DeviceOptions(read_only=True))
    device = open_device("cpu", DeviceOptions())

Backends register themselves (`register_device`); `sim` does so from `edpilot.sim`. A device declares what it
can do in `device.capabilities` and the knobs it has in `device.knobs()` (`gpu_mhz`, on a Jetson also `emc_mhz`,
the memory clock). Every knob change takes an exclusive per-device lock and saves that knob's original state
first (`edpilot.hardware.undo.KnobGuard`); `restore()` undoes it, `restore_saved()` undoes what a killed run left,
both through one registry of restorers keyed by the state's kind (`register_restorer`).
Raises DeviceError / PermissionDenied / ConfigError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import edpilot.hardware.emc  # noqa: F401 - registers the memory clock's restorer
from edpilot.errors import ConfigError
from edpilot.hardware.base import Device, DeviceCapabilities, Knob
from edpilot.hardware.guard import RestoreFailed, guarded
from edpilot.hardware.restore import RestoreOutcome, restore_saved
from edpilot.hardware.state import StateStore
from edpilot.hardware.undo import RestoreContext, register_restorer, restorer_kinds

__all__ = [
    "Device",
    "DeviceCapabilities",
    "DeviceOptions",
    "Knob",
    "RestoreFailed",
    "RestoreOutcome",
    "device_kinds",
    "guarded",
    "open_device",
    "register_device",
    "register_restorer",
    "restore_saved",
    "restorer_kinds",
]


@dataclass(frozen=True)
class DeviceOptions:
    """How to open a device: where its files are, which rails count, and whether clocks may change."""

    sysfs_root: str | Path | None = None
    rails: tuple[str, ...] | None = None
    dry_run: bool = False  # never write clocks; log what would be set
    read_only: bool = False  # never write clocks; batch-only search
    state_dir: Path | None = None  # saved state and locks; default $EDPILOT_STATE_DIR or ~/.local/state/edpilot
    seed: int = 0
    model: str = "llama-3.2-1b"  # sim: the model the simulated board runs
    profile: str | None = None  # sim: replay this profile table instead of the analytic model
    sim_speed: float | None = None  # sim: None = virtual time that jumps; X = wall-paced, X times faster

    def __post_init__(self) -> None:
        if self.rails is not None:
            object.__setattr__(self, "rails", tuple(self.rails))
        if self.dry_run and self.read_only:
            raise ConfigError("--dry-run and --read-only exclude each other: choose one")

    def state_store(self) -> StateStore:
        """The store for saved state and locks."""
        return StateStore(self.state_dir)


Opener = Callable[[str, DeviceOptions], Device]
_OPENERS: dict[str, tuple[Opener, str]] = {}


def register_device(kind: str, opener: Opener, *, usage: str) -> None:
    """Make `--device KIND[:ARG]` open through `opener(spec, options)`; `usage` is shown in help and errors."""
    _OPENERS[kind] = (opener, usage)


def device_kinds() -> list[str]:
    """Usage strings of every registered kind, e.g. 'jetson', 'nvml[:INDEX]'."""
    return [usage for _, usage in _OPENERS.values()]


def open_device(spec: str, options: DeviceOptions | None = None, **legacy: Any) -> Device:
    """Open a device from its spec string (`jetson`, `nvml:0`, `cpu`, `sim:orin-agx-32gb`, ...).

    The keyword form `open_device(spec, sysfs_root=..., rails=..., dry_run=..., read_only=..., state_store=...)`
    is accepted until every caller passes DeviceOptions.
    """
    if options is None:
        store = legacy.pop("state_store", None)
        known = {f.name for f in fields(DeviceOptions)}
        unknown = set(legacy) - known
        if unknown:
            raise TypeError(f"open_device() got unexpected keyword(s) {sorted(unknown)}")
        if store is not None:
            legacy["state_dir"] = store.directory
        options = DeviceOptions(**legacy)
    elif legacy:
        raise TypeError("open_device() takes DeviceOptions or keywords, not both")
    kind = spec.partition(":")[0]
    if kind not in _OPENERS:
        raise ConfigError(f"unknown device {spec!r}; choose one of: {', '.join(device_kinds())}")
    return _OPENERS[kind][0](spec, options)


def _open_jetson(spec: str, options: DeviceOptions) -> Device:
    from edpilot.hardware.jetson import JetsonDevice

    if spec != "jetson":
        raise ConfigError(f"--device jetson takes no argument, got {spec!r}")
    return JetsonDevice(
        root=options.sysfs_root,
        rails=options.rails,
        dry_run=options.dry_run,
        read_only=options.read_only,
        state_store=options.state_store(),
    )


def _open_nvml(spec: str, options: DeviceOptions) -> Device:
    from edpilot.hardware.nvml import NvmlDevice

    arg = spec.partition(":")[2]
    if arg and not (arg.isascii() and arg.isdigit()):
        raise ConfigError(f"--device nvml:INDEX needs a GPU index (0, 1, ...), got {spec!r}")
    return NvmlDevice(
        int(arg or 0), dry_run=options.dry_run, read_only=options.read_only, state_store=options.state_store()
    )


def _open_cpu(spec: str, options: DeviceOptions) -> Device:
    from edpilot.hardware.cpu import CpuDevice

    if spec != "cpu":
        raise ConfigError(f"--device cpu takes no argument, got {spec!r}")
    return CpuDevice()


register_device("jetson", _open_jetson, usage="jetson")
register_device("nvml", _open_nvml, usage="nvml[:INDEX]")
register_device("cpu", _open_cpu, usage="cpu")


def _restore_nvml(saved: Mapping[str, Any], context: RestoreContext) -> int:
    from edpilot.hardware.nvml import restore_nvml

    return restore_nvml(dict(saved), nvml=context.nvml_api())


register_restorer("nvml", _restore_nvml)
