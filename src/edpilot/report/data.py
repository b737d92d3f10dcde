"""Per-config aggregates of a run log, the Pareto front and the incumbent trace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ConfigPoint:
    """Mean of the windows a run log recorded at one config."""

    freq_mhz: float
    batch_size: int
    windows: int
    energy_per_request_j: float
    mean_latency_s: float
    edp: float
    keeps_up: bool


def rounds_of(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `round` records, in order."""
    return [r for r in records if r.get("type") == "round"]


def config_points(records: Sequence[dict[str, Any]]) -> list[ConfigPoint]:
    """One point per observed config (rounds with an energy reading), sorted by EDP."""
    groups: dict[tuple[float, int], list[dict[str, Any]]] = {}
    for r in rounds_of(records):
        if r.get("edp") is not None:
            groups.setdefault((float(r["freq_mhz"]), int(r["batch_size"])), []).append(r)
    points = [
        ConfigPoint(
            freq_mhz=f,
            batch_size=b,
            windows=len(rs),
            energy_per_request_j=float(np.mean([r["energy_per_request_j"] for r in rs])),
            mean_latency_s=float(np.mean([r["mean_latency_s"] for r in rs])),
            edp=float(np.mean([r["edp"] for r in rs])),
            keeps_up=sum(bool(r["keeps_up"]) for r in rs) * 2 > len(rs),
        )
        for (f, b), rs in groups.items()
    ]
    return sorted(points, key=lambda p: p.edp)


def pareto_front(points: Sequence[ConfigPoint]) -> list[ConfigPoint]:
    """Points no other point beats on both energy per request and mean latency, by latency."""
    front = []
    best_energy = np.inf
    for p in sorted(points, key=lambda p: (p.mean_latency_s, p.energy_per_request_j)):
        if p.energy_per_request_j < best_energy:
            front.append(p)
            best_energy = p.energy_per_request_j
    return front


def incumbent_edp(records: Sequence[dict[str, Any]]) -> list[float]:
    """The lowest EDP observed up to and including each round."""
    out, best = [], np.inf
    for r in rounds_of(records):
        if r.get("edp") is not None:
            best = min(best, float(r["edp"]))
        out.append(best)
    return out
