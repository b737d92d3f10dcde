"""`edpilot devices`, `edpilot apply` and `edpilot restore`: look at, pin and give back GPU clocks."""

from __future__ import annotations

import contextlib
import signal
from typing import Annotated, Any

import typer
from rich.table import Table

from edpilot.cli.common import console, err_console, handle_errors, print_json
from edpilot.errors import ConfigError, DeviceError
from edpilot.hardware import open_device, restore_saved
from edpilot.hardware.guard import guarded
from edpilot.sim import open_sim
from edpilot.sim.constants import BOARDS

SysfsRoot = Annotated[
    str | None, typer.Option(help="Read the Jetson's files under this root (env EDPILOT_SYSFS_ROOT).")
]


def _probe(sysfs_root: str | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with contextlib.suppress(DeviceError):
        jetson = open_device("jetson", sysfs_root=sysfs_root)
        found.append(jetson.describe())
        jetson.close()  # type: ignore[attr-defined]
    with contextlib.suppress(DeviceError, ImportError):
        import pynvml

        pynvml.nvmlInit()
        for index in range(pynvml.nvmlDeviceGetCount()):
            gpu = open_device(f"nvml:{index}")
            found.append(gpu.describe())
            gpu.close()  # type: ignore[attr-defined]
    found.append(open_device("cpu").describe())
    for board in BOARDS:
        found.append(open_sim(f"sim:{board}").device.describe())
    return found


@handle_errors
def devices_command(
    device: Annotated[str | None, typer.Option(help="Describe only this device spec.")] = None,
    sysfs_root: SysfsRoot = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the devices edpilot can use: levels, current clock, governor, power rails, and whether it may write."""
    if device is None:
        found = _probe(sysfs_root)
    elif device.startswith("sim"):
        found = [open_sim(device).device.describe()]
    else:
        dev = open_device(device, sysfs_root=sysfs_root)
        found = [dev.describe()]
        dev.restore()
        getattr(dev, "close", lambda: None)()
    if json_output:
        print_json(found)
        return
    for info in found:
        table = Table(title=str(info.get("name")), show_header=False, title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value")
        for key, value in info.items():
            if key == "freqs_mhz" and isinstance(value, list):
                value = f"{len(value)} levels: {', '.join(f'{v:g}' for v in value)}"
            elif key == "rails_w" and isinstance(value, dict):
                value = ", ".join(f"{k} {v:.2f} W" for k, v in value.items())
            table.add_row(key, str(value))
        console.print(table)


@handle_errors
def apply_command(
    device: Annotated[str, typer.Option(help="Device spec: jetson or nvml[:INDEX].")],
    freq: Annotated[float, typer.Option(help="GPU level to pin, in MHz (an exact level of the device).")],
    hold: Annotated[bool, typer.Option("--hold", help="Hold the level until Ctrl-C or SIGTERM, then undo it.")] = False,
    sysfs_root: SysfsRoot = None,
) -> None:
    """Pin the GPU at a tuned level so your own engine runs there.

    Without --hold the level stays pinned after edpilot exits; `edpilot restore` undoes it.
    """
    dev = open_device(device, sysfs_root=sysfs_root)
    levels = dev.freqs_mhz()
    nearest = min(levels, key=lambda lv: abs(lv - freq))
    if abs(nearest - freq) > 0.5:
        getattr(dev, "close", lambda: None)()
        raise ConfigError(f"{freq:g} MHz is not a level of {dev.name}; the nearest level is {nearest:g} MHz")
    if not hold:
        try:
            dev.set_freq_mhz(nearest)
        finally:
            getattr(dev, "close", lambda: None)()
        console.print(f"pinned {dev.name} at {nearest:g} MHz; undo with: edpilot restore")
        return
    with guarded(dev):
        dev.set_freq_mhz(nearest)
        err_console.print(f"pinned {dev.name} at {nearest:g} MHz; holding until Ctrl-C or SIGTERM")
        while True:
            signal.pause()


@handle_errors
def restore_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print what was undone as JSON.")] = False,
) -> None:
    """Undo every clock change edpilot saved and did not undo (a killed run, or apply without --hold)."""
    undone = restore_saved()
    if json_output:
        print_json(undone)
    elif not undone:
        console.print("nothing to restore")
    for saved in undone if not json_output else []:
        console.print(f"restored {saved['key']}")
