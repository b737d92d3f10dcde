"""The Jetson memory clock (EMC) through the BPMP clock interface in debugfs: find it, read its levels, pin one, undo.

    /sys/kernel/debug/bpmp/debug/clk/emc/rate             the clock now (Hz); writing it asks the BPMP for a rate
    /sys/kernel/debug/bpmp/debug/clk/emc/min_rate         the lowest rate the clock may run at (Hz)
    /sys/kernel/debug/bpmp/debug/clk/emc/max_rate         the highest (Hz; the power mode caps it)
    /sys/kernel/debug/bpmp/debug/clk/emc/mrq_rate_locked  1: the BPMP ignores the kernel's rate requests (MRQs)
                                                          and holds what `rate` was given; 0: the kernel decides

This is what NVIDIA's jetson_clocks does to the EMC (write 1 to mrq_rate_locked, then max_rate into rate; its
--store keeps mrq_rate_locked). The BPMP drops a rate that is not in its EMC table or above max_rate without an
error, so a pin is checked by reading `rate` back. Levels come from the board's table, the first found of:
`bpmp/debug/emc/possible_rates` (kHz, e.g. "204000 665600 2133000 3199000 (kHz)"), the tegra186-emc driver's
`emc/available_rates` (Hz), the entries of `bpmp/debug/emc/tables/regular/` (kHz); a board that lists none gets
the clock's own two ends, min_rate and max_rate, and says so. docs/hardware.md cites the sources.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edpilot.errors import DeviceError
from edpilot.hardware.devfreq import StaleState
from edpilot.hardware.sysfs import read_attr, read_int, writable, write_attr
from edpilot.hardware.undo import RestoreContext, register_restorer

DEBUGFS_DIR = "sys/kernel/debug"
EMC_CLK_DIR = "sys/kernel/debug/bpmp/debug/clk/emc"
POSSIBLE_RATES_KHZ = "sys/kernel/debug/bpmp/debug/emc/possible_rates"
AVAILABLE_RATES_HZ = "sys/kernel/debug/emc/available_rates"
TABLES_KHZ_DIR = "sys/kernel/debug/bpmp/debug/emc/tables/regular"
STATE_KIND = "jetson-emc"
EMC_ALLOW_HINT = (
    "The memory clock lives in debugfs, which only root may write: run edpilot with sudo, "
    "or measure without changing clocks: --dry-run"
)


class NoEmcClock(DeviceError):
    """No BPMP memory clock under the root (debugfs is mounted, but the board has none)."""


class DebugfsUnavailable(NoEmcClock):
    """debugfs is not mounted, or this process may not look into it."""


@dataclass(frozen=True)
class EmcState:
    """What to put back: the rate (Hz) and whether the BPMP held it against the kernel's requests."""

    rate_hz: int
    locked: bool


def _debugfs_problem(debugfs: Path) -> str | None:
    try:
        entries = os.listdir(debugfs)
    except PermissionError:
        return f"the memory clock is in debugfs ({debugfs}), which only root may read: run edpilot with sudo"
    except OSError:
        entries = []
    if not entries:
        return f"debugfs is not mounted, so the memory clock cannot be seen: sudo mount -t debugfs none {debugfs}"
    return None


def _numbers(text: str, *, scale: int, what: Path) -> tuple[int, ...]:
    words = text.replace("(kHz)", " ").replace("(Hz)", " ").split()
    try:
        return tuple(sorted({int(w) * scale for w in words}))
    except ValueError:
        raise DeviceError(f"{what} should list whole numbers, got {text!r}") from None


def find_levels(root: Path, clk: Path) -> tuple[tuple[int, ...], str, bool]:
    """The board's EMC levels (Hz, ascending), where they came from, and whether a table listed them (else the
    clock's two ends, min_rate and max_rate)."""
    for rel, scale in ((POSSIBLE_RATES_KHZ, 1000), (AVAILABLE_RATES_HZ, 1)):
        path = root / rel
        if path.is_file():
            levels = _numbers(read_attr(path), scale=scale, what=path)
            if levels:
                return levels, str(path), True
    tables = root / TABLES_KHZ_DIR
    if tables.is_dir():
        levels = _numbers(" ".join(p.name for p in tables.iterdir()), scale=1000, what=tables)
        if levels:
            return levels, str(tables), True
    ends = tuple(sorted({read_int(clk / "min_rate"), read_int(clk / "max_rate")}))
    return ends, f"{clk}/min_rate and max_rate (the board lists no EMC table)", False


class EmcClock:
    """Read and pin the memory clock through the BPMP's debugfs files; values kept as exact Hz."""

    def __init__(self, clk: Path, levels_hz: tuple[int, ...], levels_source: str, listed: bool = True) -> None:
        self.clk, self.levels_hz, self.levels_source, self.listed = clk, levels_hz, levels_source, listed

    def rate_hz(self) -> int:
        """The memory clock now (Hz)."""
        return read_int(self.clk / "rate")

    def max_rate_hz(self) -> int:
        """The highest rate allowed now (Hz; the power mode sets it)."""
        return read_int(self.clk / "max_rate")

    def min_rate_hz(self) -> int:
        """The lowest rate allowed now (Hz)."""
        return read_int(self.clk / "min_rate")

    def locked(self) -> bool:
        """Whether the BPMP holds the debugfs rate against the kernel's requests."""
        return read_int(self.clk / "mrq_rate_locked") != 0

    def state(self) -> EmcState:
        """The rate and lock to save before a change."""
        return EmcState(rate_hz=self.rate_hz(), locked=self.locked())

    def can_write(self) -> bool:
        """Whether this process may write rate and mrq_rate_locked."""
        return writable(self.clk / "rate") and writable(self.clk / "mrq_rate_locked")

    def check(self, state: EmcState) -> None:
        """DeviceError unless `state.rate_hz` is a level of the board's table (without a table: within the clock's
        range, as a rate the clock ran at); what cannot be put back is never changed."""
        known = (
            state.rate_hz in self.levels_hz if self.listed else self.levels_hz[0] <= state.rate_hz <= self.levels_hz[-1]
        )
        if not known:
            raise DeviceError(f"memory clock rate {state.rate_hz} Hz is not a level of {self.levels_source}")

    def pin(self, level_hz: int) -> None:
        """Hold the memory clock at one level: lock out the kernel's requests, then ask for the rate."""
        if level_hz not in self.levels_hz:
            raise DeviceError(f"{level_hz} Hz is not a memory clock level ({self.levels_source})")
        max_hz = self.max_rate_hz()
        if level_hz > max_hz:
            raise DeviceError(
                f"{level_hz / 1e6:g} MHz is above the memory clock's max_rate {max_hz / 1e6:g} MHz: the power "
                "mode caps it (nvpmodel -q shows the mode; a higher one, e.g. MAXN, lifts the cap)"
            )
        if self._held("mrq_rate_locked") != 1:
            write_attr(self.clk / "mrq_rate_locked", "1", how_to_allow=EMC_ALLOW_HINT)
        write_attr(self.clk / "rate", str(level_hz), how_to_allow=EMC_ALLOW_HINT)

    def apply(self, state: EmcState) -> int:
        """Put back a checked saved state (rate first, while still held; then the lock); return files written."""
        self.check(state)
        writes = 0
        held_lock = self._held("mrq_rate_locked")
        if state.locked and held_lock != 1:
            write_attr(self.clk / "mrq_rate_locked", "1", how_to_allow=EMC_ALLOW_HINT)
            writes += 1
            held_lock = 1
        if held_lock != 0 and self._held("rate") != state.rate_hz:
            write_attr(self.clk / "rate", str(state.rate_hz), how_to_allow=EMC_ALLOW_HINT)
            writes += 1
        if not state.locked and held_lock != 0:
            write_attr(self.clk / "mrq_rate_locked", "0", how_to_allow=EMC_ALLOW_HINT)
            writes += 1
        return writes

    def _held(self, name: str) -> int | None:
        """The number `name` holds, or None when it is not one (a write cut short by a kill on a fake tree)."""
        text = read_attr(self.clk / name)
        return int(text) if text.isdigit() else None


def open_emc(root: Path) -> EmcClock:
    """The BPMP memory clock under `root`; DebugfsUnavailable or NoEmcClock with one line saying what to do."""
    debugfs = root / DEBUGFS_DIR
    problem = _debugfs_problem(debugfs)
    if problem is not None:
        raise DebugfsUnavailable(problem)
    clk = root / EMC_CLK_DIR
    if not (clk / "rate").is_file():
        raise NoEmcClock(f"no BPMP memory clock at {clk}: this board's memory clock is not a knob edpilot can turn")
    missing = [name for name in ("min_rate", "max_rate", "mrq_rate_locked") if not (clk / name).is_file()]
    if missing:
        raise NoEmcClock(f"the BPMP memory clock at {clk} has no {', '.join(missing)}: edpilot cannot hold its rate")
    return EmcClock(clk, *find_levels(root, clk))


def restore_emc(saved: Mapping[str, Any], *, root: Path) -> int:
    """Undo a saved memory-clock state, trusting only the clock edpilot itself finds under `root`; files written."""
    clk, rate_hz, locked = saved.get("clk"), saved.get("rate_hz"), saved.get("mrq_rate_locked")
    if not (
        isinstance(clk, str)
        and isinstance(rate_hz, int)
        and not isinstance(rate_hz, bool)
        and isinstance(locked, int)
        and locked in (0, 1)
    ):
        raise DeviceError("a jetson-emc state needs clk (text), rate_hz (integer) and mrq_rate_locked (0 or 1)")
    try:
        found = open_emc(root)
    except DebugfsUnavailable:
        raise
    except NoEmcClock:
        raise StaleState(f"its memory clock {clk} is gone") from None
    if str(found.clk) != clk:
        raise DeviceError(f"{clk} is not the memory clock edpilot finds under {root}; refusing to write there")
    return found.apply(EmcState(rate_hz=rate_hz, locked=bool(locked)))


def _restore(saved: Mapping[str, Any], context: RestoreContext) -> int:
    return restore_emc(saved, root=context.root)


register_restorer(STATE_KIND, _restore)
