"""The simulated board's stock DVFS governor: what a board does with its clock when nothing pins it.

A devfreq governor (Jetson: nvhost_podgov; discrete GPUs: the driver's own) raises the clock under load and
lowers it when the GPU idles. The model: a batch runs at the highest level; after a batch the clock stays up
for `GOVERNOR_HOLD_S` (one polling period, assumed), then idles at the lowest level until the next batch.
Pinning a clock, as the paper's baseline does, removes that: the pinned level's idle power is paid between
batches too.
"""

from __future__ import annotations

from collections.abc import Callable

GOVERNOR_HOLD_S = 0.1  # assumed: one devfreq polling period at the busy level before the clock drops


def governed_idle_j(
    idle_power_w: Callable[[float], float],
    levels_mhz: tuple[float, ...],
    *,
    start_s: float,
    end_s: float,
    busy_until_s: float,
    hold_s: float = GOVERNOR_HOLD_S,
) -> float:
    """Idle energy (J) over [start_s, end_s] under the governor: the top level until `busy_until_s + hold_s`,
    the lowest level after it."""
    if end_s <= start_s:
        return 0.0
    drop_s = min(max(busy_until_s + hold_s, start_s), end_s)
    high_w, low_w = idle_power_w(levels_mhz[-1]), idle_power_w(levels_mhz[0])
    return high_w * (drop_s - start_s) + low_w * (end_s - drop_s)
