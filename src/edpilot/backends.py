"""Turn spec strings into a device and an engine (through their registries), and the grid to search.

    with open_device("sim:orin-agx-32gb") as device, open_engine("sim", device=device) as engine:
        ...                                # clocks are put back and both are closed when the block ends

`open_device`/`open_engine` are the library's way in (`edpilot.open_device`); `open_backends` opens both for
the CLI's commands; `grid(device)` is the grid a session searches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from edpilot.clock import Clock
from edpilot.engine import Engine, EngineOptions, check_phase_clocks
from edpilot.engine import open_engine as open_engine_unguarded
from edpilot.errors import ConfigError, ProfileError
from edpilot.hardware import Device, DeviceOptions, guarded
from edpilot.hardware import open_device as open_device_unguarded
from edpilot.hardware.base import EMC_KNOB, GPU_KNOB
from edpilot.sim import ProfileModel, ProfileTable, SimDevice
from edpilot.space import (
    DECODE_PREFIX,
    PAPER_BATCH_SIZES,
    PAPER_FREQ_LEVELS,
    Axis,
    Config,
    ConfigSpace,
    match_levels,
    parse_batch_sizes,
    parse_knob_levels,
    parse_number_list,
    spread_levels,
)


@dataclass
class Backends:
    """The device and engine a run uses (time is the device's clock), plus the profile table when replaying one."""

    device: Device
    engine: Engine
    profile: ProfileTable | None = None

    @property
    def clock(self) -> Clock:
        """The device's clock."""
        return self.device.clock

    def close(self) -> None:
        """Release the engine and the device."""
        try:
            self.engine.close()
        finally:
            self.device.close()


def open_backends(
    *,
    device: str,
    engine: str = "sim",
    model: str = "llama-3.2-1b",
    profile: str | None = None,
    seed: int = 0,
    sysfs_root: str | None = None,
    rails: list[str] | None = None,
    dry_run: bool = False,
    read_only: bool = False,
    engine_options: EngineOptions | None = None,
    sim_speed: float | None = None,
) -> Backends:
    """Open the device and engine the specs name through their registries, e.g. `sim:orin-agx-64gb` with `sim`.

    On a real device the `sim` engine stands in for inference: it waits (wall clock) as long as the
    simulated Orin would take for each batch, so the whole pipeline runs without a model; `hf:...`,
    `llamacpp:...` and `openai:...` generate real tokens. `sim_speed` paces the simulated board on the wall
    clock (the live server); without it simulated time jumps.
    """
    simulated = device.partition(":")[0] == "sim"
    if simulated:
        _check_sim_engine(engine)
    if profile is not None and not simulated:
        raise ConfigError("--profile only applies to --device sim")
    if sim_speed is not None and not simulated:
        raise ConfigError("--sim-speed only applies to --device sim (a real device runs in real time)")
    options = DeviceOptions(
        sysfs_root=sysfs_root,
        rails=tuple(rails) if rails else None,
        dry_run=dry_run,
        read_only=read_only,
        seed=seed,
        model=model,
        profile=profile,
        sim_speed=sim_speed,
    )
    opened = open_device_unguarded(device, options)
    try:
        engine_opts = replace(engine_options or EngineOptions(seed=seed), sim_model=model)
        eng = open_engine_unguarded(engine, engine_opts, opened)
    except BaseException:
        opened.close()
        raise
    return Backends(opened, eng, profile_table(opened))


@contextlib.contextmanager
def open_device(spec: str = "sim", *, options: DeviceOptions | None = None, **fields: Any) -> Iterator[Device]:
    """Open a device by spec (`sim[:BOARD]`, `jetson`, `nvml[:INDEX]`, `cpu`) for the block; clocks always restored.

    `fields` are `DeviceOptions` fields (`dry_run=True`, `read_only=True`, `rails=("VDD_GPU_SOC",)`,
    `sysfs_root=...`, `model=...`, `profile="table.csv"`, `seed=...`). When the block ends — normally, by an
    exception, Ctrl-C, SIGTERM or SIGHUP — every clock the device changed is put back and it is closed.
    Raises ConfigError (bad spec), DeviceError / PermissionDenied (the device cannot be opened).
    """
    opened = open_device_unguarded(spec, options or DeviceOptions(**fields))
    with guarded(opened) as device:
        yield device


@contextlib.contextmanager
def open_engine(
    spec: str = "sim", *, device: Device | None = None, options: EngineOptions | None = None, **fields: Any
) -> Iterator[Engine]:
    """Open an engine by spec (`sim`, `hf:PRESET|PATH`, `llamacpp:FILE.gguf|gemma-3-270m`, `openai:URL`) for the block.

    `fields` are `EngineOptions` fields (`threads=2`, `torch_device="cpu"`, `model_name=...`). `sim` needs the
    `device` it runs on; a simulated device runs only `sim`. The engine is closed when the block ends.
    Raises ConfigError (bad spec) and EngineError (a model that cannot be loaded, a missing extra).
    """
    if isinstance(device, SimDevice):
        _check_sim_engine(spec)
    opened = open_engine_unguarded(spec, options or EngineOptions(**fields), device)
    try:
        yield opened
    finally:
        opened.close()


def _check_sim_engine(engine: str) -> None:
    if engine != "sim":
        raise ConfigError(f"the simulated device runs only the sim engine, not {engine!r}")


def profile_table(device: Device) -> ProfileTable | None:
    """The profile table a simulated device replays, or None (the analytic model, or a real device)."""
    if isinstance(device, SimDevice) and isinstance(device.model, ProfileModel):
        return device.model.table
    return None


def build_space(
    backends: Backends,
    *,
    freqs: str | None = None,
    batches: str | None = None,
    emcs: str | None = None,
    phase_clocks: bool = False,
) -> ConfigSpace:
    """The grid of `backends` (see `grid`); `phase_clocks` needs an engine that sees its prefill end."""
    if phase_clocks:
        check_phase_clocks(backends.engine.name)
    return grid(
        backends.device, profile=backends.profile, freqs=freqs, batches=batches, emcs=emcs, phase_clocks=phase_clocks
    )


def grid(
    device: Device,
    *,
    profile: ProfileTable | None = None,
    freqs: str | None = None,
    batches: str | None = None,
    emcs: str | None = None,
    phase_clocks: bool = False,
) -> ConfigSpace:
    """The grid: the paper's (7 spread levels × batch 4..28) or the profile's, narrowed by --freqs/--batches;
    `--emcs all|LIST` adds the memory clock (default: not searched, left where the board has it);
    `phase_clocks` adds a decode axis (`decode_gpu_mhz`, ...) with the levels of each searched clock."""
    axes = [Axis(GPU_KNOB, _gpu_levels(device, profile, freqs))]
    if emcs is not None:
        axes.append(Axis(EMC_KNOB, _emc_levels(device, profile, emcs)))
    if phase_clocks:
        axes += _decode_axes(axes, profile)
    if batches is None:
        batch_sizes = profile.batch_sizes if profile else PAPER_BATCH_SIZES
    else:
        batch_sizes = parse_batch_sizes(batches)
    space = ConfigSpace(tuple(axes), batch_sizes)
    if profile is not None:
        held = {n: device.knob_level(n) for n in profile.knob_names if space.axis(n) is None}  # at the board's level
        missing = [c for c in space if not profile.has(Config.of(c.batch_size, **dict(c.knobs), **held))]
        if missing:
            raise ProfileError(
                f"the profile has no samples for {len(missing)} config(s) of the grid, e.g. {missing[0]}; "
                "narrow it with --freqs/--batches"
            )
    return space


def _decode_axes(axes: list[Axis], profile: ProfileTable | None) -> list[Axis]:
    """--phase-clocks: one decode axis per searched clock, with the same levels (the prefill axis is the clock's)."""
    if profile is not None:
        raise ConfigError("--phase-clocks cannot replay a profile: it records whole batches at one level")
    searched = [a for a in axes if a.searched]
    if not searched:
        raise ConfigError("--phase-clocks needs a clock searched at two levels or more (--freqs, --emcs)")
    return [Axis(DECODE_PREFIX + a.name, a.levels) for a in searched]


def _gpu_levels(device: Device, profile: ProfileTable | None, freqs: str | None) -> tuple[float | None, ...]:
    """The GPU levels to search: the device's own (a read-only device), spread, the profile's, all or a list."""
    levels, caps = device.freqs_mhz(), device.capabilities
    if not caps.can_set_clocks and not caps.dry_run:
        if freqs is not None:
            raise ConfigError(
                f"{device.name} cannot change clocks ({caps.read_only_reason}): --freqs cannot be searched, "
                "only batch sizes"
            )
        return (device.current_freq_mhz(),)
    if freqs is None:
        return profile.freqs_mhz if profile else spread_levels(levels, PAPER_FREQ_LEVELS)
    if freqs.strip() == "all":
        return tuple(levels)
    return match_levels(parse_number_list(freqs, what="--freqs"), levels)


def _emc_levels(device: Device, profile: ProfileTable | None, emcs: str) -> tuple[float, ...]:
    """The memory clock levels `--emcs all|LIST` picks: the device's (or the replayed profile's) exact levels."""
    if profile is not None:
        levels = profile.levels_of(EMC_KNOB)
        if not levels:
            raise ConfigError("--emcs cannot be searched: the profile has no emc_mhz column")
        return parse_knob_levels(emcs, levels, option="--emcs")
    knob = next((k for k in device.knobs() if k.name == EMC_KNOB), None)
    if knob is None:
        raise ConfigError(f"--emcs cannot be searched: {device.name} has no memory clock knob (emc_mhz)")
    reason = knob.read_only_reason if not device.capabilities.dry_run else None
    return parse_knob_levels(emcs, knob.levels, option="--emcs", read_only_reason=reason)
