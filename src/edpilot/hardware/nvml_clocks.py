"""NVML's memory clock as a knob: its supported levels and the clock now, read-only (edpilot never locks it).

`memory_clock_knob(nvml, handle)` lists `nvmlDeviceGetSupportedMemoryClocks` (MHz; an H100 or H200 lists one).
"""

from __future__ import annotations

import logging
from typing import Any

from edpilot.errors import DeviceError
from edpilot.hardware.base import Knob
from edpilot.hardware.nvml_api import NvmlApi

log = logging.getLogger(__name__)

MEM_KNOB = "mem_mhz"
MEM_READ_ONLY_REASON = "edpilot reads NVML memory clocks but never locks them"


def memory_clocks_mhz(nvml: NvmlApi, handle: Any) -> tuple[float, ...]:
    """The supported memory clocks (MHz), ascending."""
    clocks = nvml.call("nvmlDeviceGetSupportedMemoryClocks", handle, what="list memory clocks")
    return tuple(sorted(float(mhz) for mhz in clocks))


def memory_clock_knob(nvml: NvmlApi, handle: Any) -> Knob:
    """The memory clock as a read-only knob (no levels, saying why, when NVML cannot list them)."""
    try:
        levels, reason = memory_clocks_mhz(nvml, handle), MEM_READ_ONLY_REASON
    except DeviceError as exc:
        levels, reason = (), f"{MEM_READ_ONLY_REASON}; its levels could not be listed: {exc}"
    return Knob(
        MEM_KNOB,
        "MHz",
        levels,
        writable=False,
        read_only_reason=reason,
        levels_source="nvmlDeviceGetSupportedMemoryClocks",
    )


def current_memory_clock_mhz(nvml: NvmlApi, handle: Any) -> float | None:
    """The memory clock now (MHz), or None when NVML cannot read it."""
    try:
        kind = nvml.const("NVML_CLOCK_MEM")
        return float(nvml.call("nvmlDeviceGetClockInfo", handle, kind, what="read the memory clock"))
    except DeviceError as exc:
        log.warning("memory clock: %s", exc)
        return None
