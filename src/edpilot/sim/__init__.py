"""The simulated Jetson platform: a virtual clock, a performance/power model, and a device and engine on them.

`open_sim("sim:orin-agx-32gb", model="llama-3.2-1b", seed=0)` builds the analytic model;
`open_sim("sim", profile="profile.csv")` replays a measured profile table instead.
Raises ConfigError for unknown boards or models and ProfileError for bad profile files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edpilot.architectures import get_architecture
from edpilot.clock import VirtualClock
from edpilot.errors import ConfigError
from edpilot.sim.constants import BOARDS, DEFAULT_BOARD, LLAMA_CPP_Q5_K_M
from edpilot.sim.model import AnalyticModel, BatchCost, PerformanceModel, ProfileModel
from edpilot.sim.platform import SimDevice, SimEngine
from edpilot.sim.profile import ProfileRow, ProfileTable, read_profile, write_profile

__all__ = [
    "AnalyticModel",
    "BatchCost",
    "PerformanceModel",
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

    clock: VirtualClock
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
) -> SimPlatform:
    """Build a simulated platform from a `sim[:BOARD]` spec, a model name, or a profile table."""
    _, _, board_name = spec.partition(":")
    clock = VirtualClock()
    rng = np.random.default_rng(seed)
    if profile is not None:
        if board_name:
            raise ConfigError("--profile replaces the board model: use --device sim, not sim:BOARD")
        table = read_profile(profile)
        perf: PerformanceModel = ProfileModel(table)
        name = f"sim:{table.metadata.get('device', 'profile')}"
    else:
        board_name = board_name or DEFAULT_BOARD
        if board_name not in BOARDS:
            raise ConfigError(f"unknown simulated board {board_name!r}; known boards: {', '.join(BOARDS)}")
        perf = AnalyticModel(BOARDS[board_name], get_architecture(model), LLAMA_CPP_Q5_K_M)
        name = f"sim:{board_name}"
    device = SimDevice(perf, clock, name=name, dry_run=dry_run, read_only=read_only)
    return SimPlatform(clock=clock, device=device, engine=SimEngine(device, perf, clock, rng), model=perf)
