"""Measure every config of a grid N times and keep the samples as a profile table (the format of `edpilot.sim.profile`).

Each sample is one saturated batch of b requests: its service time and the device energy during it. A
meter that updates slowly (NVML: ~100 ms; Jetson INA3221: ~430 ms averaging) cannot measure one short
batch, so a sample runs the batch back to back until its window spans `MIN_METER_UPDATES` updates, and
divides. On a counter that updates in steps the window starts and ends on counter updates (serving.window),
and the tail between the last batch and the closing update is taken out at the power of the update after
it. The table is rewritten atomically after every config, so an interrupted run loses at most one
config, and `resume` skips configs that already have enough samples.

Idle power depends on what ran before (an H200 read 121.7 W right after load and 78.6 W settled), so
`settle_idle` waits until power stops falling, within a bound, before idle power is measured, and the
table records how long that took (`idle_settle_s`, `idle_settled`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edpilot.engine import Engine
from edpilot.errors import ConfigError, DeviceError, ProfileError
from edpilot.hardware import Device
from edpilot.levels import set_levels
from edpilot.serving.phase import PhaseSwitch, phase_switch
from edpilot.serving.window import TICK_TIMEOUT_UPDATES, EnergyWindow, wait_for_tick
from edpilot.sim.profile import ProfileRow, read_profile, write_profile
from edpilot.space import Config, ConfigSpace
from edpilot.workload import Request, Workload

log = logging.getLogger(__name__)

IDLE_MEASURE_S = 2.0
IDLE_SETTLE_STEP_S = 2.0  # one power reading while settling
IDLE_SETTLE_STEPS = 3  # settled: this many readings in a row fall by no more than the tolerance
IDLE_SETTLE_TOLERANCE = 0.01  # relative fall allowed across those readings
IDLE_SETTLE_MAX_S = 90.0  # give up (and say so) after this long
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
        groups.setdefault(r.config, []).append(r)
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
    """Mean device power (W) over `duration_s` with nothing running (a window aligned to counter updates)."""
    interval_ms = device.capabilities.meter_update_interval_ms
    with EnergyWindow(device, device.clock, update_interval_ms=interval_ms, align=True) as window:
        device.clock.sleep_until(window.start_s + duration_s)  # type: ignore[operator]
    if window.energy_j is None:
        raise ConfigError(f"edpilot profile needs an energy meter, and {device.name} gave no reading")
    return window.energy_j / window.duration_s


@dataclass(frozen=True)
class IdleSettle:
    """How idle power settled: the readings taken (W, one per step), seconds waited, and whether it settled."""

    readings_w: tuple[float, ...]
    settle_s: float
    settled: bool


def settle_idle(
    device: Device,
    *,
    step_s: float = IDLE_SETTLE_STEP_S,
    steps: int = IDLE_SETTLE_STEPS,
    tolerance: float = IDLE_SETTLE_TOLERANCE,
    max_s: float = IDLE_SETTLE_MAX_S,
) -> IdleSettle:
    """Wait, idle, until power stops falling: the last `steps` readings fall by at most `tolerance`, or `max_s`."""
    start_s = device.clock.now_s()
    readings: list[float] = []
    while True:
        readings.append(measure_idle_power_w(device, step_s))
        waited_s = device.clock.now_s() - start_s
        last = readings[-steps:]
        if len(last) == steps and last[-1] >= last[0] * (1.0 - tolerance):
            return IdleSettle(tuple(readings), waited_s, settled=True)
        if waited_s >= max_s:
            log.warning("idle power still falling after %.0f s (%.1f W): measured as it is", waited_s, readings[-1])
            return IdleSettle(tuple(readings), waited_s, settled=False)


def idle_metadata(device: Device) -> dict[str, object]:
    """Settle, then measure idle power: the profile metadata lines that say what was measured and how."""
    settle = settle_idle(device)
    return {
        "idle_power_w": round(measure_idle_power_w(device), 3),
        "idle_settle_s": round(settle.settle_s, 1),
        "idle_settled": settle.settled,
    }


def measure_sample(
    device: Device,
    engine: Engine,
    batch: list[Request],
    *,
    freq_mhz: float,
    knobs: tuple[tuple[str, float], ...] = (),
    align: bool = True,
    min_updates: int = MIN_METER_UPDATES,
    phase: PhaseSwitch | None = None,
) -> ProfileRow:
    """One sample: the batch run back to back until the window spans enough meter updates, divided per batch.

    Aligned (a meter with an update interval): the window opens on a counter update, the batches run at once,
    and it closes on the first update after them; the tail after the work is taken out at the power measured
    over the next update, so latency and energy cover the batches alone. `knobs`: the other knobs' levels
    (`(("emc_mhz", 3199.0),)`, and the decode levels under --phase-clocks), recorded with the row; `phase`
    switches each batch's decode to them, inside the window.
    """
    interval_ms = device.capabilities.meter_update_interval_ms
    window = EnergyWindow(device, device.clock, update_interval_ms=interval_ms, align=align).begin()
    runs = 0
    while True:
        if phase is None:
            engine.generate(batch)
        else:
            try:
                engine.generate(batch, on_decode=phase.on_decode)
            finally:
                phase.end_batch()
        runs += 1
        spanned = (device.clock.now_s() - window.start_s) * 1000.0 / interval_ms if interval_ms else None  # type: ignore[operator]
        if spanned is None or spanned >= min_updates or runs >= MAX_BATCHES_PER_SAMPLE:
            break
    window.end()
    energy_j = window.energy_j
    if energy_j is None:
        raise ConfigError(f"edpilot profile needs an energy meter, and {device.name} gave no reading")
    if not window.aligned_end:
        return ProfileRow(freq_mhz, len(batch), window.duration_s / runs, energy_j / runs, knobs)
    energy_j -= window.tail_s * _power_after_w(device, window)
    work_s = window.work_end_s - window.start_s  # type: ignore[operator]
    return ProfileRow(freq_mhz, len(batch), work_s / runs, energy_j / runs, knobs)


def _power_after_w(device: Device, window: EnergyWindow) -> float:
    """Power (W) over the counter update that follows an aligned window (0 when the counter does not tick)."""
    timeout_s = TICK_TIMEOUT_UPDATES * window.update_interval_ms / 1000.0  # type: ignore[operator]
    tick = wait_for_tick(device, device.clock, timeout_s=timeout_s)
    if tick is None or window.end_reading_j is None:
        return 0.0
    t_s, energy_j = tick
    return (energy_j - window.end_reading_j) / (t_s - window.end_s)  # type: ignore[operator]


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
        idle_keys = ("idle_power_w", "idle_settle_s", "idle_settled")
        metadata = {**previous.metadata, **{k: v for k, v in metadata.items() if k not in idle_keys}}
    elif output.exists() and not resume:
        raise ConfigError(f"{output} exists: pass --resume to continue it, or choose another --output")
    if "idle_power_w" not in metadata:
        metadata.update(idle_metadata(device))
    rng = np.random.default_rng(seed)
    for config in space:
        pinned = device.capabilities.can_set_clocks
        others = tuple((n, level) for n, level in config.knobs if n != "gpu_mhz")  # decode levels included
        done = sum(
            1
            for r in rows
            if r.batch_size == config.batch_size and r.knobs == others and (not pinned or r.freq_mhz == config.freq_mhz)
        )
        if done >= repeats:
            continue
        if pinned:
            set_levels(device, config)  # every knob of the row, GPU first
        engine.generate(workload.requests(config.batch_size, rng))  # warm-up: caches, compilation, clocks
        freq_mhz = config.freq_mhz if pinned else level_seen(device)
        if freq_mhz is None:  # a profile row is keyed by its frequency
            raise DeviceError(f"{device.name}: the GPU clock could not be read, and a profile row needs it")
        for _ in range(repeats - done):
            phase = phase_switch(device, device.clock, prefill=config.device_levels(), decode=config.decode_levels())
            row = measure_sample(
                device, engine, workload.requests(config.batch_size, rng), freq_mhz=freq_mhz, knobs=others, phase=phase
            )
            rows.append(row)
            if on_sample is not None:
                on_sample(row)
        write_profile(output, metadata, rows)
        log.info("profiled %s", config)
    write_profile(output, metadata, rows)
    return rows
