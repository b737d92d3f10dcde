"""Turn the CLI's spec strings into a device and an engine (through their registries), and the grid to search."""

from __future__ import annotations

from dataclasses import dataclass, replace

from edpilot.clock import Clock
from edpilot.engine import Engine, EngineOptions, open_engine
from edpilot.errors import ConfigError, ProfileError
from edpilot.hardware import Device, DeviceOptions, open_device
from edpilot.sim import ProfileModel, ProfileTable, SimDevice
from edpilot.space import (
    PAPER_BATCH_SIZES,
    PAPER_FREQ_LEVELS,
    ConfigSpace,
    match_levels,
    parse_batch_sizes,
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
    if simulated and engine != "sim":
        raise ConfigError(f"the simulated device runs only the sim engine, not {engine!r}")
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
    opened = open_device(device, options)
    try:
        engine_opts = replace(engine_options or EngineOptions(seed=seed), sim_model=model)
        eng = open_engine(engine, engine_opts, opened)
    except BaseException:
        opened.close()
        raise
    table = opened.model.table if isinstance(opened, SimDevice) and isinstance(opened.model, ProfileModel) else None
    return Backends(opened, eng, table)


def build_space(backends: Backends, *, freqs: str | None = None, batches: str | None = None) -> ConfigSpace:
    """The grid: the paper's (7 spread levels × batch 4..28) or the profile's, narrowed by --freqs/--batches."""
    device, table = backends.device, backends.profile
    levels, caps = device.freqs_mhz(), device.capabilities
    if not caps.can_set_clocks and not caps.dry_run:
        if freqs is not None:
            raise ConfigError(
                f"{device.name} cannot change clocks ({caps.read_only_reason}): --freqs cannot be searched, "
                "only batch sizes"
            )
        freqs_mhz: tuple[float | None, ...] = (device.current_freq_mhz(),)
    elif freqs is None:
        freqs_mhz = table.freqs_mhz if table else spread_levels(levels, PAPER_FREQ_LEVELS)
    elif freqs.strip() == "all":
        freqs_mhz = tuple(levels)
    else:
        freqs_mhz = match_levels(parse_number_list(freqs, what="--freqs"), levels)
    if batches is None:
        batch_sizes = table.batch_sizes if table else PAPER_BATCH_SIZES
    else:
        batch_sizes = parse_batch_sizes(batches)
    space = ConfigSpace(freqs_mhz, batch_sizes)
    if table is not None:
        recorded = set(table.configs)
        missing = [c for c in space if (c.freq_mhz, c.batch_size) not in recorded]
        if missing:
            raise ProfileError(
                f"the profile has no samples for {len(missing)} config(s) of the grid, e.g. {missing[0]}; "
                "narrow it with --freqs/--batches"
            )
    return space
