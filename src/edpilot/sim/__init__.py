"""The simulated Jetson platform: a virtual clock, a performance/power model, and a device and engine on them.

`open_sim("sim:orin-agx-32gb", model="llama-3.2-1b", seed=0)` builds the analytic model;
`open_sim("sim", profile="profile.csv")` replays a measured profile table instead.
Raises ConfigError for unknown boards or models and ProfileError for bad profile files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edpilot.architectures import get_architecture
from edpilot.clock import ScaledClock, VirtualClock
from edpilot.engine import EngineOptions, register_engine
from edpilot.errors import ConfigError
from edpilot.hardware import Device, DeviceOptions, register_device
from edpilot.sim.constants import BOARDS, DEFAULT_BOARD, LLAMA_CPP_Q5_K_M
from edpilot.sim.model import AnalyticModel, BatchCost, EmcView, Levels, PerformanceModel, PhaseCost, ProfileModel
from edpilot.sim.platform import SimDevice, SimEngine
from edpilot.sim.profile import ProfileRow, ProfileTable, read_profile, write_profile

__all__ = [
    "AnalyticModel",
    "BatchCost",
    "EmcView",
    "Levels",
    "PerformanceModel",
    "PhaseCost",
    "ProfileModel",
    "ProfileRow",
    "ProfileTable",
    "SimDevice",
    "SimEngine",
    "SimPlatform",
    "open_sim",
    "read_profile",
    "write_profile",
]


@dataclass
class SimPlatform:
    """Everything a simulated run needs, sharing one clock."""

    clock: VirtualClock | ScaledClock
    device: SimDevice
    engine: SimEngine
    model: PerformanceModel


def open_sim(
    spec: str,
    *,
    model: str = "llama-3.2-1b",
    profile: str | None = None,
    seed: int = 0,
    dry_run: bool = False,
    read_only: bool = False,
    clock: VirtualClock | ScaledClock | None = None,
    filler_text: bool = False,
) -> SimPlatform:
    """Build a simulated platform from a `sim[:BOARD]` spec, a model name, or a profile table.

    `clock` defaults to a fresh VirtualClock (time jumps); the live server passes a ScaledClock (wall-paced).
    """
    _, _, board_name = spec.partition(":")
    clock = clock or VirtualClock()
    rng = np.random.default_rng(seed)
    emc: EmcView | ProfileModel | None = None
    if profile is not None:
        if board_name:
            raise ConfigError("--profile replaces the board model: use --device sim, not sim:BOARD")
        table = read_profile(profile)
        replay = ProfileModel(table)
        perf: PerformanceModel = replay
        emc = replay if replay.emc_levels_mhz else None  # a table with an emc_mhz column: the memory clock knob
        name = f"sim:{table.metadata.get('device', 'profile')}"
    else:
        board_name = board_name or DEFAULT_BOARD
        if board_name not in BOARDS:
            raise ConfigError(f"unknown simulated board {board_name!r}; known boards: {', '.join(BOARDS)}")
        analytic = AnalyticModel(BOARDS[board_name], get_architecture(model), LLAMA_CPP_Q5_K_M)
        perf, emc = analytic, EmcView(analytic)
        name = f"sim:{board_name}"
    device = SimDevice(perf, clock, name=name, dry_run=dry_run, read_only=read_only, emc=emc)
    engine = SimEngine(device, device.priced_model, clock, rng, filler_text=filler_text)
    return SimPlatform(clock=clock, device=device, engine=engine, model=perf)


def _open_sim_device(spec: str, options: DeviceOptions) -> SimDevice:
    clock = None if options.sim_speed is None else ScaledClock(options.sim_speed)
    return open_sim(
        spec,
        model=options.model,
        profile=options.profile,
        seed=options.seed,
        dry_run=options.dry_run,
        read_only=options.read_only,
        clock=clock,
    ).device


def _open_sim_engine(arg: str, options: EngineOptions, device: Device | None) -> SimEngine:
    """On the simulated board: its own model and clock; on a real device: the default board's model, wall-paced."""
    if arg:
        raise ConfigError(f"--engine sim takes no argument, got 'sim:{arg}' (choose the model with --model)")
    rng = np.random.default_rng(options.seed)
    if isinstance(device, SimDevice):
        return SimEngine(device, device.priced_model, device.clock, rng, filler_text=options.filler_text)
    if device is None:
        raise ConfigError("the sim engine needs a device to run on")
    perf = AnalyticModel(BOARDS[DEFAULT_BOARD], get_architecture(options.sim_model), LLAMA_CPP_Q5_K_M)
    return SimEngine(device, perf, device.clock, rng, filler_text=options.filler_text)


register_device("sim", _open_sim_device, usage="sim[:BOARD]")
register_engine("sim", _open_sim_engine, usage="sim", phase_clocks=True)
