"""Power rails of the INA3221 monitors on a Jetson, read through hwmon.

Each monitor lives at sys/bus/i2c/drivers/ina3221/<bus-addr>/hwmon/hwmonN/ (`ina3221x` on older kernels),
with inN_label (rail name), inN_input (mV) and currN_input (mA) per channel; a channel labelled NC is
not connected. The total is VDD_IN where the module has it (Orin NX/Nano); otherwise (AGX Orin) the sum
of every labelled rail. `update_interval` (ms) is how long the chip averages each reading.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edpilot.errors import ConfigError, DeviceError
from edpilot.hardware.sysfs import read_attr, read_int

DRIVER_DIRS = ("sys/bus/i2c/drivers/ina3221", "sys/bus/i2c/drivers/ina3221x")
TOTAL_RAIL = "VDD_IN"
NOT_CONNECTED = "NC"
log = logging.getLogger(__name__)
_LABEL = re.compile(r"in(\d+)_label$")


@dataclass(frozen=True)
class Rail:
    """One monitored channel: its label, which chip it is on, and the files to read."""

    label: str
    chip: str  # e.g. 1-0040
    voltage_file: Path  # mV
    current_file: Path  # mA

    def power_w(self) -> float:
        """Instantaneous power on this rail (W) = mV × mA / 1e6; DeviceError for a failed or negative reading."""
        mv, ma = read_int(self.voltage_file), read_int(self.current_file)
        if mv < 0 or ma < 0:
            raise DeviceError(f"rail {self.label} ({self.chip}) reads {mv} mV, {ma} mA: a negative reading is invalid")
        return mv * ma / 1e6


@dataclass(frozen=True)
class PowerRails:
    """The rails found, which of them make the total, and the chips' averaging interval."""

    rails: tuple[Rail, ...]
    total: tuple[Rail, ...]
    update_interval_ms: int | None

    def power_w(self) -> float:
        """Total power (W) over the rails that make the total."""
        return sum(r.power_w() for r in self.total)

    def readings_w(self) -> dict[str, float | None]:
        """Present power of every rail (W), by label; None for a rail that cannot be read now."""
        readings: dict[str, float | None] = {}
        for rail in self.rails:
            try:
                readings[rail.label] = rail.power_w()
            except DeviceError as exc:
                log.warning("rail %s: %s", rail.label, exc)
                readings[rail.label] = None
        return readings


def find_rails(root: Path) -> list[tuple[Rail, Path]]:
    """Every connected, labelled channel under `root`, with its hwmon directory."""
    found: list[tuple[Rail, Path]] = []
    for driver in DRIVER_DIRS:
        for hwmon in sorted((root / driver).glob("*/hwmon/hwmon*")):
            chip = hwmon.parent.parent.name
            for label_file in sorted(hwmon.glob("in*_label")):
                m = _LABEL.match(label_file.name)
                if not m:
                    continue
                label = read_attr(label_file)
                n = m.group(1)
                volt, curr = hwmon / f"in{n}_input", hwmon / f"curr{n}_input"
                if label == NOT_CONNECTED or not label or not (volt.exists() and curr.exists()):
                    continue
                found.append((Rail(label, chip, volt, curr), hwmon))
    return found


def open_rails(root: Path, wanted: Sequence[str] | None = None) -> PowerRails:
    """The rails under `root`; the total is `wanted` if given, else VDD_IN, else every rail."""
    found = find_rails(root)
    if not found:
        raise DeviceError(
            f"no INA3221 power monitors under {root}/{DRIVER_DIRS[0]} (or ina3221x); "
            "edpilot cannot measure energy on this board"
        )
    rails = tuple(r for r, _ in found)
    by_label = {r.label: r for r in rails}
    if wanted:
        unknown = [w for w in wanted if w not in by_label]
        if unknown:
            raise ConfigError(f"unknown rail(s) {', '.join(unknown)}; this board has: {', '.join(by_label)}")
        total = tuple(by_label[w] for w in wanted)
    elif TOTAL_RAIL in by_label:
        total = (by_label[TOTAL_RAIL],)
    else:
        total = rails
    for rail in total:
        try:
            rail.power_w()
        except DeviceError as exc:
            raise DeviceError(
                f"power rail {rail.label} ({rail.chip}) cannot be read, so the total would be wrong: {exc}; "
                "fix its permissions, or count other rails with --rails"
            ) from None
    intervals = {read_int(h / "update_interval") for _, h in found if (h / "update_interval").is_file()}
    return PowerRails(rails=rails, total=total, update_interval_ms=max(intervals) if intervals else None)
