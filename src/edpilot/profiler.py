"""Measure every config of a grid N times and keep the samples as a profile table (the format of `edpilot.sim.profile`).

Each sample is one saturated batch of b requests: its service time and the device energy during it. A
meter that updates slowly (NVML: ~100 ms; Jetson INA3221: ~430 ms averaging) cannot measure one short
batch, so a sample runs the batch back to back until its window spans `MIN_METER_UPDATES` updates, and
divides. The table is rewritten atomically after every config, so an interrupted run loses at most one
config, and `resume` skips configs that already have enough samples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edpilot.engine import Engine
from edpilot.errors import ConfigError, ProfileError
from edpilot.hardware import Device
from edpilot.serving.window import EnergyWindow
from edpilot.sim.profile import ProfileRow, read_profile, write_profile
from edpilot.space import Config, ConfigSpace
from edpilot.workload import Request, Workload

log = logging.getLogger(__name__)

IDLE_MEASURE_S = 2.0
MIN_METER_UPDATES = 10
MAX_BATCHES_PER_SAMPLE = 1000


@dataclass(frozen=True)
class BatchProfile:
    """What a profile table says of one config's saturated batches (not of served windows, see `stats`):
    batch time (s), output tokens/s, joules per output token and power (W; None without a meter)."""

    config: Config
    samples: int
    mean_latency_s: float
    tokens_per_s: float
    joules_per_token: float | None
    power_w: float | None


def config_stats(rows: list[ProfileRow], output_tokens: int) -> list[BatchProfile]:
    """Per-config aggregates of a profile's samples, in grid order."""
    groups: dict[Config, list[ProfileRow]] = {}
    for r in rows:
        groups.setdefault(Config(r.freq_mhz, r.batch_size), []).append(r)
    out = []
    for config, rs in sorted(groups.items()):
        lat = float(np.mean([r.latency_s for r in rs]))
        tokens = config.batch_size * output_tokens
        if any(r.energy_j is None for r in rs):
            out.append(BatchProfile(config, len(rs), lat, tokens / lat, None, None))
            continue
        energy = float(np.mean([r.energy_j for r in rs]))
        out.append(BatchProfile(config, len(rs), lat, tokens / lat, energy / tokens, energy / lat))
    return out


def level_seen(device: Device) -> float | None:
    """Clocks float on a device that cannot pin them: the nearest level to the clock seen under load."""
    current, levels = device.current_freq_mhz(), device.freqs_mhz()
    if current is None or not levels:
        return current
    return min(levels, key=lambda lv: abs(lv - current))


def measure_idle_power_w(device: Device, duration_s: float = IDLE_MEASURE_S) -> float:
    """Mean device power (W) over `duration_s` with nothing running."""
    with EnergyWindow(device, device.clock) as window:
        device.clock.sleep_until(window.start_s + duration_s)  # type: ignore[operator]
    if window.energy_j is None:
        raise ConfigError(f"edpilot profile needs an energy meter, and {device.name} gave no reading")
    return window.energy_j / window.duration_s


def measure_sample(device: Device, engine: Engine, batch: list[Request], *, freq_mhz: float | None) -> ProfileRow:
    """One sample: the batch run back to back until the window spans enough meter updates, divided per batch."""
    interval_ms = device.capabilities.meter_update_interval_ms
    with EnergyWindow(device, device.clock, update_interval_ms=interval_ms) as window:
        runs = 0
        while True:
            engine.generate(batch)
            runs += 1
            spanned = (device.clock.now_s() - window.start_s) * 1000.0 / interval_ms if interval_ms else None  # type: ignore[operator]
            if spanned is None or spanned >= MIN_METER_UPDATES or runs >= MAX_BATCHES_PER_SAMPLE:
                break
    if window.energy_j is None:
        raise ConfigError(f"edpilot profile needs an energy meter, and {device.name} gave no reading")
    return ProfileRow(freq_mhz, len(batch), window.duration_s / runs, window.energy_j / runs)


def profile(
    *,
    device: Device,
    engine: Engine,
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
        metadata["idle_power_w"] = round(measure_idle_power_w(device), 3)
    rng = np.random.default_rng(seed)
    for config in space:
        pinned = device.capabilities.can_set_clocks
        done = sum(
            1 for r in rows if r.batch_size == config.batch_size and (not pinned or r.freq_mhz == config.freq_mhz)
        )
        if done >= repeats:
            continue
        if pinned and config.freq_mhz is not None:
            device.set_freq_mhz(config.freq_mhz)
        engine.generate(workload.requests(config.batch_size, rng))  # warm-up: caches, compilation, clocks
        freq_mhz = config.freq_mhz if pinned else level_seen(device)
        for _ in range(repeats - done):
            row = measure_sample(device, engine, workload.requests(config.batch_size, rng), freq_mhz=freq_mhz)
            rows.append(row)
            if on_sample is not None:
                on_sample(row)
        write_profile(output, metadata, rows)
        log.info("profiled %s", config)
    write_profile(output, metadata, rows)
    return rows
