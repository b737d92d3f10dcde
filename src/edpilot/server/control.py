"""Online control of `serve`: never stay on a config measured behind, and say when every config falls behind.

A config's capacity is what its measured rounds can serve (req/s; `capacity_per_s`): the hardware's answer,
which does not depend on the traffic, so it can be held against any arrival rate. After each round the driver
asks `control` whether the session's next config may be served at the estimated rate:
- every measured config's capacity is below the rate and the grid's highest-throughput corner (top clock,
  largest batch) is among them: the traffic is more than any config can serve — `overloaded`, and the config
  with the highest measured capacity is served until the rate falls;
- the next config's measured capacity is below the rate: it is replaced at this batch boundary by the
  cheapest measured config that can serve the rate, else by the corner when it is not measured yet, else by
  the config with the highest capacity.
"""

from __future__ import annotations

from dataclasses import dataclass

from edpilot.space import Config, ConfigSpace
from edpilot.stats import ConfigStats


@dataclass(frozen=True)
class Decision:
    """The config to serve next; `overloaded` when no config can serve the rate; `note` says why it moved."""

    config: Config
    overloaded: bool = False
    note: str | None = None


def capacity_per_s(stats: ConfigStats) -> float | None:
    """Requests per second the config's measured rounds serve; None when none served.

    Static batches: b / mean batch time. Continuous batching: the slots over a request's share of the step
    time, slots × requests / (steps × mean sequences in a step × mean step time) — exact for a round whose
    slots stayed full, and an upper bound from one that ran with free slots (a fuller step takes no less)."""
    slots = stats.config.batch_size
    rounds = [o for o in stats.served if o.mean_batch_s > 0]
    steps = [(o.requests, o.steps * o.mean_sequences * o.mean_batch_s) for o in rounds if o.steps and o.mean_sequences]
    if steps and len(steps) == len(rounds):
        return slots * sum(n for n, _ in steps) / sum(busy_s for _, busy_s in steps)
    return None if not rounds else slots * len(rounds) / sum(o.mean_batch_s for o in rounds)


def top_corner(space: ConfigSpace) -> Config:
    """The grid's highest-throughput config under monotone hardware: the top clock and the largest batch."""
    freqs = [f for f in space.freqs_mhz if f is not None]
    return Config.of(max(space.batch_sizes), gpu_mhz=max(freqs) if freqs else None)


def control(
    proposal: Config, *, stats: dict[Config, ConfigStats], space: ConfigSpace, rate_per_s: float | None
) -> Decision:
    """Whether `proposal` may be served at `rate_per_s` (None: unknown, anything goes), and what instead."""
    if rate_per_s is None:
        return Decision(proposal)
    capacity = {c: cap for c, s in stats.items() if (cap := capacity_per_s(s)) is not None}
    if not capacity:
        return Decision(proposal)
    fastest = max(capacity, key=capacity.__getitem__)
    corner = top_corner(space)
    if capacity[fastest] < rate_per_s and corner in capacity:
        note = (
            f"every config falls behind {rate_per_s:.3g} req/s: the most any measured config serves is "
            f"{capacity[fastest]:.3g} req/s at {fastest}; serving it until the rate falls"
        )
        return Decision(fastest, overloaded=True, note=note)
    at = capacity.get(proposal)
    if at is None or at >= rate_per_s:
        return Decision(proposal)
    serving = [c for c, cap in capacity.items() if cap >= rate_per_s]
    if serving:
        instead = min(serving, key=lambda c: stats[c].mean_cost)
    else:
        instead = corner if corner not in capacity else fastest
    note = f"{proposal} serves {at:.3g} req/s, below the arrival rate {rate_per_s:.3g} req/s: moved to {instead}"
    return Decision(instead, note=note)
