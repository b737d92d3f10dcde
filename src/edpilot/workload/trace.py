"""Trace replay: requests from a JSONL file, one object a line.

    {"arrival_s": 0.0, "prompt": "Summarize ...", "max_new_tokens": 64}

Arrival times are seconds from the trace start, non-decreasing. Each window takes the next requests of
the trace (wrapping around at its end), with arrivals shifted so the window's first request arrives at 0.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edpilot.errors import WorkloadError
from edpilot.jsonfields import show
from edpilot.serving.traffic import Traffic
from edpilot.textfile import read_lines
from edpilot.workload.prompts import estimate_tokens
from edpilot.workload.request import Request


@dataclass(frozen=True)
class TraceEntry:
    """One recorded request."""

    arrival_s: float
    prompt: str
    max_new_tokens: int


MAX_ARRIVAL_S = 1e7  # about 116 days: later arrivals are a unit mistake, and they break float precision


def read_trace(path: str | os.PathLike[str], *, max_new_tokens_cap: int = 8192) -> list[TraceEntry]:
    """Parse and validate a trace; WorkloadError names the file, line and problem."""
    path = Path(path)
    lines = read_lines(path, what="trace", error=WorkloadError)
    entries: list[TraceEntry] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"{where}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise WorkloadError(f"{where}: nested too deeply to be a trace entry") from None
        except ValueError as exc:  # beyond json's limits: an integer of more than 4300 digits
            raise WorkloadError(f"{where}: not a trace entry ({str(exc).partition(':')[0]})") from None
        if not isinstance(obj, dict):
            raise WorkloadError(f"{where}: expected an object with arrival_s, prompt, max_new_tokens")
        missing = [k for k in ("arrival_s", "prompt", "max_new_tokens") if k not in obj]
        if missing:
            raise WorkloadError(f"{where}: missing {', '.join(missing)}")
        arrival, prompt, max_new = obj["arrival_s"], obj["prompt"], obj["max_new_tokens"]
        if isinstance(arrival, bool) or not isinstance(arrival, int | float) or not 0 <= arrival <= MAX_ARRIVAL_S:
            raise WorkloadError(
                f"{where}: arrival_s must be a number of seconds in [0, {MAX_ARRIVAL_S:g}], got {show(arrival)}"
            )
        if not isinstance(prompt, str) or not prompt:
            raise WorkloadError(f"{where}: prompt must be a non-empty string")
        if isinstance(max_new, bool) or not isinstance(max_new, int) or not 1 <= max_new <= max_new_tokens_cap:
            raise WorkloadError(
                f"{where}: max_new_tokens must be a whole number in [1, {max_new_tokens_cap}], got {show(max_new)}"
            )
        if entries and arrival < entries[-1].arrival_s:
            raise WorkloadError(f"{where}: arrival_s {arrival} is before the previous line's {entries[-1].arrival_s}")
        entries.append(TraceEntry(float(arrival), prompt, max_new))
    if not entries:
        raise WorkloadError(f"trace {path} has no requests")
    return entries


class TraceWorkload:
    """Replays a trace window by window."""

    def __init__(self, entries: list[TraceEntry]) -> None:
        self.entries = entries
        times = [e.arrival_s for e in entries]
        gap_s = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1.0
        self.period_s = times[-1] - times[0] + gap_s  # one pass of the trace, for wrapping
        if not times[0] + self.period_s > times[0]:  # every request at one instant: the stream would never advance
            raise WorkloadError(
                f"the trace's {len(times)} arrivals all fall at {times[0]:g} s: a replayed stream needs them spread "
                "in time (for a burst, use --arrivals saturated)"
            )
        self._next = 0

    @property
    def arrivals(self) -> str:
        """Name of the arrival process, for the run log."""
        return "trace"

    def traffic(self, requests_per_round: int) -> Traffic:
        """The trace as the search sees it: its mean rate, gaps and lengths."""
        times = np.array([e.arrival_s for e in self.entries])
        gaps_s = np.diff(times) if len(times) > 1 else np.array([self.period_s])
        return Traffic(
            arrivals="trace",
            rate_per_s=len(self.entries) / self.period_s if self.period_s > 0 else 1.0,
            prompt_tokens=float(np.mean([estimate_tokens(e.prompt) for e in self.entries])),
            output_tokens=float(np.mean([e.max_new_tokens for e in self.entries])),
            requests_per_round=requests_per_round,
            gaps_s=tuple(float(g) for g in gaps_s),
        )

    def requests(self, count: int, rng: np.random.Generator) -> list[Request]:
        """The next `count` requests of the trace, arrivals relative to the first of them."""
        out: list[Request] = []
        n = len(self.entries)
        start = self._next
        for i in range(count):
            k = start + i
            e = self.entries[k % n]
            t = e.arrival_s + (k // n) * self.period_s
            out.append(Request(i, t, e.prompt, estimate_tokens(e.prompt), e.max_new_tokens))
        self._next = (start + count) % n
        t0 = out[0].arrival_s
        return [Request(r.request_id, r.arrival_s - t0, r.prompt, r.prompt_tokens, r.max_new_tokens) for r in out]
