"""Measure every config of a grid N times and keep the samples as a profile table (DESIGN.md format).

Each sample is one saturated batch of b requests: its service time and the device energy during it.
The table is rewritten atomically after every config, so an interrupted run loses at most one config,
and `resume` skips configs that already have enough samples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edpilot.clock import Clock
from edpilot.engine import Engine
from edpilot.errors import ConfigError, ProfileError
from edpilot.hardware import Device
from edpilot.sim.profile import ProfileRow, read_profile, write_profile
from edpilot.space import Config, ConfigSpace
from edpilot.workload import Workload

log = logging.getLogger(__name__)

IDLE_MEASURE_S = 2.0


@dataclass(frozen=True)
class ConfigStats:
    """Aggregates of one config's samples: latency (s), tokens/s, joules per output token, power (W)."""

    config: Config
    samples: int
    mean_latency_s: float
    tokens_per_s: float
    joules_per_token: float
    power_w: float


def config_stats(rows: list[ProfileRow], output_tokens: int) -> list[ConfigStats]:
    """Per-config aggregates, in grid order."""
    groups: dict[Config, list[ProfileRow]] = {}
    for r in rows:
        groups.setdefault(Config(r.freq_mhz, r.batch_size), []).append(r)
    out = []
    for config, rs in sorted(groups.items()):
        lat = float(np.mean([r.latency_s for r in rs]))
        energy = float(np.mean([r.energy_j for r in rs]))
        tokens = config.batch_size * output_tokens
        out.append(ConfigStats(config, len(rs), lat, tokens / lat, energy / tokens, energy / lat))
    return out


def measure_idle_power_w(device: Device, clock: Clock, duration_s: float = IDLE_MEASURE_S) -> float:
    """Mean device power (W) over `duration_s` with nothing running."""
    e0, t0 = device.energy_j(), clock.now_s()
    clock.sleep_until(t0 + duration_s)
    e1, t1 = device.energy_j(), clock.now_s()
    if e0 is None or e1 is None:
        raise ConfigError(f"edpilot profile needs an energy meter, and {device.name} has none")
    return (e1 - e0) / (t1 - t0)


def profile(
    *,
    device: Device,
    engine: Engine,
    clock: Clock,
    space: ConfigSpace,
    repeats: int,
    workload: Workload,
    output: Path,
    metadata: dict[str, object],
    resume: bool = False,
    seed: int = 0,
    on_sample: Callable[[ProfileRow], None] | None = None,
) -> list[ProfileRow]:
    """Measure each config `repeats` times (after one untimed warm-up batch per config) into `output`."""
    if repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {repeats}")
    rows: list[ProfileRow] = []
    if resume and output.exists():
        previous = read_profile(output)
        for key in ("device", "model", "output_tokens"):
            if key in previous.metadata and str(previous.metadata[key]) != str(metadata.get(key)):
                raise ProfileError(
                    f"{output} was measured with {key} {previous.metadata[key]!r}, not {metadata.get(key)!r}; "
                    "choose another --output"
                )
        rows = list(previous.rows)
        metadata = {**previous.metadata, **{k: v for k, v in metadata.items() if k != "idle_power_w"}}
    elif output.exists() and not resume:
        raise ConfigError(f"{output} exists: pass --resume to continue it, or choose another --output")
    if "idle_power_w" not in metadata:
        metadata["idle_power_w"] = round(measure_idle_power_w(device, clock), 3)
    rng = np.random.default_rng(seed)
    for config in space:
        done = sum(
            1 for r in rows if r.batch_size == config.batch_size and (device.read_only or r.freq_mhz == config.freq_mhz)
        )
        if done >= repeats:
            continue
        if not device.read_only:
            device.set_freq_mhz(config.freq_mhz)
        engine.generate(workload.requests(config.batch_size, rng))  # warm-up: caches, compilation, clocks
        freq_mhz = config.freq_mhz
        if device.read_only:  # clocks float: label the samples with the level seen under load
            freq_mhz = min(device.freqs_mhz(), key=lambda lv: abs(lv - device.current_freq_mhz()))
        for _ in range(repeats - done):
            batch = workload.requests(config.batch_size, rng)
            e0, t0 = device.energy_j(), clock.now_s()
            engine.generate(batch)
            t1, e1 = clock.now_s(), device.energy_j()
            if e0 is None or e1 is None:
                raise ConfigError(f"edpilot profile needs an energy meter, and {device.name} has none")
            row = ProfileRow(freq_mhz, config.batch_size, t1 - t0, e1 - e0)
            rows.append(row)
            if on_sample is not None:
                on_sample(row)
        write_profile(output, metadata, rows)
        log.info("profiled %s", config)
    write_profile(output, metadata, rows)
    return rows
