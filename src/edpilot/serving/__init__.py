"""The serving core every driver shares: replayed windows, the profiler and the live server.

- `StaticBatcher` (sans-IO): `offer(request, now_s)`, `poll(now_s)`, `next_deadline_s()`, `max_wait_s`.
- `EnergyWindow`: energy (J) and duration (s) of a stretch on one meter; missing readings stay missing.
- `Traffic`: arrival process, rate and lengths, as the search sees them.
- `queueing`: the static-batching maths (fill wait, keeps up, batch completion times).
"""

from __future__ import annotations

from edpilot.serving.batcher import StaticBatcher
from edpilot.serving.traffic import TRAFFIC_KINDS, Traffic, TrafficKind, window_requests
from edpilot.serving.window import EnergyWindow

__all__ = ["TRAFFIC_KINDS", "EnergyWindow", "StaticBatcher", "Traffic", "TrafficKind", "window_requests"]
