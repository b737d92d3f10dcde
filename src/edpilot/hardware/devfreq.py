"""The Jetson GPU's devfreq node: find it, read its levels, pin one, and put it back.

JetPack 5: /sys/devices/17000000.ga10b/devfreq/17000000.ga10b; JetPack 6:
/sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu (also /sys/class/devfreq/17000000.gpu).
Files hold Hz: available_frequencies, cur_freq, min_freq, max_freq, governor, available_governors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edpilot.errors import DeviceError
from edpilot.hardware.sysfs import read_attr, read_int, writable, write_attr
from edpilot.hardware.undo import RestoreContext, register_restorer

STATE_KIND = "jetson"

GPU_NODE_NAMES = ("17000000.ga10b", "17000000.gpu", "17000000.gv11b", "57000000.gpu")  # Orin JP5, Orin JP6, Xavier, TX2
ALLOW_HINT = (
    "Run edpilot with sudo, or let a group write the GPU clock files with a udev rule "
    '\'SUBSYSTEM=="devfreq", KERNEL=="17000000.*", RUN+="/bin/chgrp edpilot /sys%p/min_freq /sys%p/max_freq", '
    'RUN+="/bin/chmod 0664 /sys%p/min_freq /sys%p/max_freq"\' and add yourself to that group '
    "(sudo groupadd -r edpilot; sudo usermod -aG edpilot $USER); or measure without changing clocks: --dry-run"
)


class NoDevfreqNode(DeviceError):
    """No Jetson GPU devfreq node under the sysfs root (not a Jetson)."""


def find_gpu_devfreq(root: Path) -> Path:
    """The GPU's devfreq directory under `root`, found by looking; never a link that leads outside `root`."""
    real_root = root.resolve()
    candidates: list[Path] = []
    class_dir = root / "sys/class/devfreq"
    if class_dir.is_dir():
        candidates += [class_dir / name for name in GPU_NODE_NAMES if (class_dir / name).exists()]
    devices = root / "sys/devices"
    if devices.is_dir():
        for name in GPU_NODE_NAMES:
            candidates += sorted(devices.glob(f"{name}/devfreq/{name}"))
            candidates += sorted(devices.glob(f"platform/**/{name}/devfreq/{name}"))
    for path in candidates:
        resolved = path.resolve()
        if resolved.is_relative_to(real_root) and (resolved / "available_frequencies").is_file():
            return resolved
    raise NoDevfreqNode(
        f"no Jetson GPU devfreq node under {root} (looked for {', '.join(GPU_NODE_NAMES)} in "
        "sys/class/devfreq and sys/devices); is this a Jetson? Use --device sim otherwise"
    )


@dataclass(frozen=True)
class DevfreqState:
    """The clock settings to put back: min/max in Hz and the governor."""

    min_hz: int
    max_hz: int
    governor: str


class GpuDevfreq:
    """Read and pin the GPU clock through devfreq; values kept as exact Hz."""

    def __init__(self, node: Path) -> None:
        self.node = node
        text = read_attr(node / "available_frequencies")
        try:
            self.levels_hz = tuple(sorted(int(v) for v in text.split()))
        except ValueError:
            raise DeviceError(f"{node / 'available_frequencies'} should list integers (Hz), got {text!r}") from None
        if not self.levels_hz:
            raise DeviceError(f"{node / 'available_frequencies'} is empty")

    @property
    def name(self) -> str:
        """The node's name, e.g. 17000000.ga10b."""
        return self.node.name

    def cur_hz(self) -> int:
        """The clock right now (Hz)."""
        return read_int(self.node / "cur_freq")

    def state(self) -> DevfreqState:
        """Current min, max and governor."""
        return DevfreqState(
            min_hz=read_int(self.node / "min_freq"),
            max_hz=read_int(self.node / "max_freq"),
            governor=read_attr(self.node / "governor"),
        )

    def governors(self) -> tuple[str, ...]:
        """The governors the node lists (available_governors), else only the current one."""
        path = self.node / "available_governors"
        return tuple(read_attr(path).split()) if path.is_file() else (read_attr(self.node / "governor"),)

    def can_write(self) -> bool:
        """Whether this process may write min_freq and max_freq."""
        return writable(self.node / "min_freq") and writable(self.node / "max_freq")

    def check(self, state: DevfreqState) -> None:
        """DeviceError unless `state` holds only levels and a governor this node lists (min <= max)."""
        for what, hz in (("min", state.min_hz), ("max", state.max_hz)):
            if hz not in self.levels_hz:
                raise DeviceError(f"{what} {hz} Hz is not a level {self.name} lists in available_frequencies")
        if state.min_hz > state.max_hz:
            raise DeviceError(f"min {state.min_hz} Hz is above max {state.max_hz} Hz")
        if state.governor not in self.governors():
            raise DeviceError(f"governor {state.governor!r} is not one {self.name} lists in available_governors")

    def set_range(self, min_hz: int, max_hz: int) -> int:
        """Write min and max in the order that never leaves min > max, skipping values that hold; return writes."""
        current = {name: self._held_hz(name) for name in ("min_freq", "max_freq")}
        held_max = current["max_freq"]
        order = (
            [("max_freq", max_hz), ("min_freq", min_hz)]
            if held_max is None or min_hz > held_max
            else [
                ("min_freq", min_hz),
                ("max_freq", max_hz),
            ]
        )
        writes = 0
        for name, value in order:
            if current[name] != value:
                write_attr(self.node / name, str(value), how_to_allow=ALLOW_HINT)
                writes += 1
        return writes

    def _held_hz(self, name: str) -> int | None:
        """The value `name` holds, or None when it is not a number — a write cut short by a kill, seen on a tree of
        plain files — so that it is written rather than trusted. Unreadable files still raise."""
        text = read_attr(self.node / name)
        return int(text) if text.isdigit() else None

    def pin(self, level_hz: int) -> None:
        """Pin the GPU at one exact level (min = max = level)."""
        if level_hz not in self.levels_hz:
            raise DeviceError(f"{level_hz} Hz is not a level of {self.name}")
        self.set_range(level_hz, level_hz)

    def apply(self, state: DevfreqState) -> int:
        """Put back a checked saved state: range first, then the governor; return how many files were written."""
        self.check(state)
        writes = self.set_range(state.min_hz, state.max_hz)
        if read_attr(self.node / "governor") != state.governor:
            write_attr(self.node / "governor", state.governor, how_to_allow=ALLOW_HINT)
            writes += 1
        return writes


class StaleState(DeviceError):
    """A saved state whose device is gone."""


def restore_devfreq(saved: Mapping[str, Any], *, root: Path) -> int:
    """Undo a saved Jetson state, trusting only the node edpilot itself finds under `root`; return files written."""
    node, governor = saved.get("node"), saved.get("governor")
    min_hz, max_hz = saved.get("min_hz"), saved.get("max_hz")
    if not (isinstance(node, str) and isinstance(governor, str)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in (min_hz, max_hz)
    ):
        raise DeviceError("a jetson state needs node (text), min_hz and max_hz (integers) and governor (text)")
    try:
        found = find_gpu_devfreq(root)
    except NoDevfreqNode:
        found = None
    if found is None or str(found) != node:
        if not os.path.lexists(node):
            raise StaleState(f"its devfreq node {node} is gone")
        raise DeviceError(f"{node} is not the GPU devfreq node edpilot finds under {root}; refusing to write there")
    return GpuDevfreq(found).apply(DevfreqState(int(min_hz), int(max_hz), governor))  # type: ignore[arg-type]


def _restore(saved: Mapping[str, Any], context: RestoreContext) -> int:
    return restore_devfreq(saved, root=context.root)


register_restorer(STATE_KIND, _restore)
