"""Bounds on every size, count and rate a user can ask for: one table, one check, one line of error.

A typo (`--batches 1000000000`, `--arrival-rate 1e308`, a 30-digit batch size in a profile) must end in one
line and exit 2 before anything allocates, loops or waits on it. Each bound is far wider than any real run on
one GPU needs; a value past it is a mistake, not a setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from edpilot.errors import ConfigError, EdpilotError

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class Limit:
    """The range a quantity may take; `whole` for counts, `open_low` where the minimum itself is excluded."""

    minimum: float
    maximum: float
    whole: bool = True
    open_low: bool = False

    def describe(self) -> str:
        """'a whole number between 1 and 1024', 'a number > 0 and at most 1e+05', ..."""
        kind = "a whole number" if self.whole else "a finite number"
        low, high = (str(int(v)) if self.whole else f"{v:g}" for v in (self.minimum, self.maximum))
        if self.open_low:
            return f"{kind} > {low} and at most {high}"
        return f"{kind} between {low} and {high}"


LIMITS: dict[str, Limit] = {
    # static batch: the paper's grid stops at 28; a vLLM max_num_seqs is 256–1024
    "batch_size": Limit(1, 1024),
    "budget": Limit(1, 100_000),  # search rounds; 100 rounds take about a second on the simulator
    "requests_per_round": Limit(1, 100_000),
    "output_tokens": Limit(1, 8192),  # a cap, so a typo cannot allocate a KV cache that gets the process killed
    "prompt_tokens": Limit(1, 131_072),  # the longest context of the shipped architectures
    "repeats": Limit(1, 10_000),
    "seeds": Limit(1, 10_000),
    "workers": Limit(1, 256),
    "threads": Limit(1, 4096),
    "gpu_layers": Limit(0, 10_000),
    "seed": Limit(0, 2**32 - 1),
    "arrival_rate_per_s": Limit(1e-4, 1e5, whole=False),  # one request every ~3 h .. 100 000 per second
    "max_wait_s": Limit(0, 1e6, whole=False),  # a hold of ~11 days: long enough to mean "never flush"
    "latency_s": Limit(0, 86_400, whole=False, open_low=True),  # an SLO, a batch's service time
    "energy_j": Limit(0, 1e9, whole=False),  # a batch's energy: 1 GJ is a megawatt for 1000 s
    "power_w": Limit(0, 1e6, whole=False, open_low=True),
    "freq_mhz": Limit(0, 1e5, whole=False, open_low=True),
    "interval_s": Limit(0, 3600, whole=False, open_low=True),  # `top` between readings
    "readings": Limit(1, 10**9),
    "duration_s": Limit(0, 1e7, whole=False, open_low=True),  # ~116 days
}


def bounded(value: N, what: str, flag: str, *, error: type[EdpilotError] = ConfigError) -> N:
    """`value` if it lies within LIMITS[what], else `error` naming `flag`, the range and the value (shown short)."""
    limit = LIMITS[what]
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        number = float(value) if isinstance(value, float) or abs(value) < 2**1023 else math.inf
        ok = math.isfinite(number) and limit.minimum <= number <= limit.maximum
        ok = ok and not (limit.open_low and number <= limit.minimum) and not (limit.whole and number != int(number))
    if not ok:
        raise error(f"{flag} must be {limit.describe()}, got {show_number(value)}")
    return value


def show_number(value: object) -> str:
    """A number as an error shows it: '1e+308', '1000000000', 'a number of more than 20 digits' (never a page)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if abs(value) < 10**20 else "a number of more than 20 digits"
