"""`edpilot devices`, `edpilot apply` and `edpilot restore`: look at, pin and give back GPU and memory clocks."""

from __future__ import annotations

import contextlib
import importlib.util
import math
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

import edpilot.sim  # noqa: F401 - registers the sim device
from edpilot.cli.common import console, err_console, handle_errors, print_json, stops_on_signals
from edpilot.errors import ConfigError, DeviceError, EdpilotError, PermissionDenied
from edpilot.hardware import Device, DeviceOptions, RestoreFailed, guarded, open_device, restore_saved
from edpilot.hardware.base import EMC_KNOB
from edpilot.hardware.devfreq import NoDevfreqNode
from edpilot.hardware.guard import raise_if_signalled
from edpilot.hardware.nvml_api import NvmlApi
from edpilot.runlog import read_run_log
from edpilot.sim.constants import BOARDS
from edpilot.space import Config

HOLD_POLL_S = 0.1

SysfsRoot = Annotated[
    str | None, typer.Option(help="Read the Jetson's files under this root (env EDPILOT_SYSFS_ROOT).")
]


def _describe(spec: str, options: DeviceOptions) -> dict[str, Any]:
    """Open, describe and close a device; never changes or restores a clock."""
    dev = open_device(spec, options)
    try:
        return dev.describe()
    finally:
        dev.close()


def _probe(sysfs_root: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every device found, and one note per backend that is installed but cannot be used."""
    options = DeviceOptions(sysfs_root=sysfs_root)
    found: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        found.append(_describe("jetson", options))
    except NoDevfreqNode:
        pass
    except DeviceError as exc:
        notes.append(f"jetson: {exc}")
    if importlib.util.find_spec("pynvml") is not None:
        try:
            found += [_describe(f"nvml:{index}", options) for index in range(NvmlApi.load().device_count())]
        except DeviceError as exc:
            notes.append(f"nvml: {exc}")
    found.append(_describe("cpu", options))
    found += [_describe(f"sim:{board}", options) for board in BOARDS]
    return found, notes


def _show(value: object) -> str:
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return f"{len(value)} levels: {', '.join(f'{v:g}' for v in value)}"
    if isinstance(value, dict) and "levels_mhz" in value:  # a knob: the memory clock
        return "; ".join(f"{k} {_show(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, dict):
        return ", ".join(f"{k} {'n/a' if v is None else f'{v:.2f} W'}" for k, v in value.items())
    return "n/a" if value is None else str(value)


@handle_errors
def devices_command(
    device: Annotated[str | None, typer.Option(help="Describe only this device spec.")] = None,
    sysfs_root: SysfsRoot = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the devices edpilot can use: levels, current clock, governor, power rails, and whether it may write."""
    notes: list[str] = []
    if device is None:
        found, notes = _probe(sysfs_root)
    else:
        found = [_describe(device, DeviceOptions(sysfs_root=sysfs_root))]
    for note in notes:
        err_console.print(f"note: {escape(note)}", highlight=False)
    if json_output:
        print_json(found)
        return
    for info in found:
        table = Table(title=str(info.get("name")), show_header=False, title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value")
        for key, value in info.items():
            table.add_row(key, escape(_show(value)))
        console.print(table)


def _best_from_run_log(path: Path) -> Config:
    """The best config of a run log's summary record: every knob it sets (GPU, memory clock) and its batch size."""
    summary = read_run_log(path).summary
    if summary is None:
        raise ConfigError(f"{path} has no summary record (the run did not finish); choose a level with --freq")
    best = summary.best_config  # checked when the log was read
    if not best.device_levels():
        raise ConfigError(f"{path} was tuned on a device without a clock knob: there is no frequency to pin")
    return best


def _emc_level(dev: Device, emc: float) -> float:
    """The memory-clock level to pin, checked before anything changes (nothing is changed when it cannot be)."""
    knob = next((k for k in dev.knobs() if k.name == EMC_KNOB), None)
    if knob is None or not knob.levels or not knob.writable:
        reason = "it has no memory clock knob" if knob is None else knob.read_only_reason
        error = PermissionDenied if str(reason).startswith("no permission") else DeviceError
        raise error(f"{dev.name} may not change the memory clock: {reason}. Nothing was changed")
    if not (math.isfinite(emc) and emc > 0):
        raise ConfigError(f"--emc must be a level in MHz (a finite number > 0), got {emc}")
    nearest = min(knob.levels, key=lambda lv: abs(lv - emc))
    if abs(nearest - emc) > 0.5:
        raise ConfigError(f"--emc {emc:g} MHz is not a memory clock level of {dev.name}; the nearest is {nearest:g}")
    return nearest


@handle_errors
@stops_on_signals("clocks restored: what this command pinned has been put back")
def apply_command(
    device: Annotated[str, typer.Option(help="Device spec: jetson or nvml[:INDEX].")],
    freq: Annotated[float | None, typer.Option(help="GPU level to pin, in MHz (an exact level of the device).")] = None,
    emc: Annotated[
        float | None, typer.Option("--emc", help="Memory clock level to pin, in MHz (Jetson: e.g. 665.6, 3199).")
    ] = None,
    from_log: Annotated[
        Path | None, typer.Option("--from", help="Pin the best config of this run log (tune --output).")
    ] = None,
    hold: Annotated[bool, typer.Option("--hold", help="Hold the level until Ctrl-C or SIGTERM, then undo it.")] = False,
    sysfs_root: SysfsRoot = None,
) -> None:
    """Pin the GPU (and with --emc the memory clock) at a tuned level so your own engine runs there.

    Without --hold the levels stay pinned after edpilot exits; `edpilot restore` undoes them.
    """
    if (freq is not None and from_log is not None) or (freq is None and from_log is None and emc is None):
        raise ConfigError("give either --freq MHZ or --from RUN.jsonl (and/or --emc MHZ for the memory clock)")
    if device.partition(":")[0] == "sim":
        raise ConfigError(
            f"--device {device} is simulated: it lives only inside an edpilot process, so there is no clock to "
            "pin for your engine; pin a real GPU (--device jetson or nvml[:INDEX]), or serve the simulated choice "
            "with `edpilot serve --config RUN.jsonl`"
        )
    best = None
    if from_log is not None:
        best = _best_from_run_log(from_log)
        freq = best.freq_mhz
        if best.level(EMC_KNOB) is not None:
            if emc is not None:
                raise ConfigError(f"{from_log} tuned the memory clock ({best}): drop --emc, or pin with --freq/--emc")
            emc = best.level(EMC_KNOB)
    if freq is not None and not (math.isfinite(freq) and freq > 0):
        raise ConfigError(f"--freq must be a level in MHz (a finite number > 0), got {freq}")
    dev = open_device(device, DeviceOptions(sysfs_root=sysfs_root))
    level: float | None = None
    emc_level: float | None = None
    try:
        if freq is not None:
            levels = dev.freqs_mhz()
            if not levels:
                raise DeviceError(f"{dev.name} has no frequency levels to pin")
            level = min(levels, key=lambda lv: abs(lv - freq))
            if abs(level - freq) > 0.5:
                raise ConfigError(f"{freq:g} MHz is not a level of {dev.name}; the nearest level is {level:g} MHz")
        if emc is not None:
            emc_level = _emc_level(dev, emc)
    except EdpilotError:
        dev.close()
        raise
    parts = ([] if level is None else [f"{level:g} MHz"]) + ([] if emc_level is None else [f"memory {emc_level:g} MHz"])
    what = ", ".join(parts)

    def pin() -> None:
        if level is not None:
            dev.set_freq_mhz(level)
        if emc_level is not None:
            dev.set_knob(EMC_KNOB, emc_level)

    if hold:
        with guarded(dev):
            pin()
            with contextlib.suppress(OSError):  # a hung-up terminal must not stop the hold
                err_console.print(f"pinned {dev.name} at {what}; holding until Ctrl-C or SIGTERM")
            while True:  # wake often: a signal whose exception was lost (raised in a finaliser) still ends the hold
                raise_if_signalled()
                dev.clock.sleep_until(dev.clock.now_s() + HOLD_POLL_S)
    try:
        with guarded(dev, keep_on_success=True):
            pin()
    except RestoreFailed:
        raise
    except EdpilotError as exc:
        raise DeviceError(
            f"could not pin {dev.name} at {what}: {exc}. Nothing is left changed (what was written has "
            "been put back), so `edpilot restore` has nothing to undo"
        ) from None
    console.print(f"pinned {dev.name} at {what}; undo with: edpilot restore")
    if best is not None:
        console.print(f"set your engine's batch size to {best.batch_size} (the best config in {from_log})")
        if best.decode_levels():
            decode = ", ".join(f"{n} {v:g}" for n, v in best.decode_levels().items())
            console.print(f"the tuned decode levels ({decode}) need an engine that switches clocks per phase")


@handle_errors
def restore_command(
    discard: Annotated[
        bool,
        typer.Option(
            "--discard", help="Also remove saved states that can never be restored (corrupt, or the device is gone)."
        ),
    ] = False,
    sysfs_root: SysfsRoot = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one outcome per state file as JSON.")] = False,
) -> None:
    """Undo every clock change edpilot saved and did not undo (a killed run, or apply without --hold).

    Each state file is reported; one that cannot be restored never blocks the others. Exit code 2 if any is left.
    """
    outcomes = restore_saved(sysfs_root_dir=sysfs_root, discard=discard)
    if json_output:
        print_json([{**asdict(o), "ok": o.ok} for o in outcomes])
    elif not outcomes:
        console.print("nothing to restore")
    for outcome in outcomes if not json_output else []:
        if outcome.ok:
            console.print(escape(outcome.message), highlight=False)
        else:
            err_console.print(f"[bold red]edpilot: {outcome.status}:[/] {escape(outcome.message)}", highlight=False)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(code=2)
