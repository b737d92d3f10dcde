"""Live traffic as the search sees it: arrival rate and lengths, and a change test for drift.

The arrival rate is tested by comparing the last n inter-arrival gaps (n = `recent`, then 2× and 4× that)
with the history before them: a drift is a ratio of their mean gaps beyond `min_rate_ratio`, beyond `z`
standard deviations of the log of an n-gap sum (the larger of the Poisson value 1/√n and the spread the
history itself shows) and `TAIL_MARGIN` beyond the largest swing of an n-gap sum in that history. Clumped
arrivals (HTTP jitter, clients released together when a batch ends, an event loop that stalls) so widen
the bar instead of raising false drifts, and longer windows still see a change through the clumps. A drift
seen over n gaps must hold over the last 1.5·n too (a clump passes out of the longer window, a change stays
in it), or in each half of the last n on its own beyond the Poisson floor of n/2 gaps (a clump sits in one
half; right after a real change the 1.5·n window still holds old gaps, which slowed a 4× rise on a stalling
event loop to 73 arrivals). The widest spread of any long history (≥ 4n gaps before the last n) is
remembered, so neither the short history after a drift nor a calm stretch of clumped traffic lowers the bar.
Until then (a young server: under 5n gaps and no long history seen) the whole history is scanned for the split
where the mean gaps before and after it differ most, each ratio scored as a normal deviate of the F distribution
two Poisson means of those counts follow (`_ratio_z`): a drift is `YOUNG_Z` deviates (so the bar is wide for a
short history and narrows as it grows), counted on as many fewer gaps as the segments are overdispersed
(`_dispersion`), with each half of what follows the split showing it too; a history of clumped arrivals (more than
`YOUNG_MAX_TIES` of its gaps ties) is not tested young, and the history restarts at the likeliest change point.
Every gap is clipped at `GAP_CLIP` times the 95th percentile of the raw gaps behind the standing estimate
before it counts, in the test and in the estimate (kept raw, and clipped by the newest estimate's clip: a
first estimate made inside a burst of near-zero gaps must not clip every later gap to nothing), so one quiet
pause between two load phases at the same rate moves neither (a percentile, not the mean, so the pauses between
the clumps of clumped traffic are not clipped and a clumped rate that falls is still seen).

Prompt and output lengths are tested with a change-point scan for a shift in the mean of log tokens (a
squared two-sample t statistic maximised over the split). A change is reported when it is large enough to
matter (`min_rate_ratio`; lengths by `min_length_change` and at least `MIN_LENGTH_CHANGE_TOKENS`); the
history then restarts after it, so the new estimate uses only the traffic after it. Once `4·min_segment`
arrivals have followed a drift the oldest `min_segment` of them are dropped and the estimate is refined
(reported as `refined`, not as another drift). Steady traffic refines the estimate too, each time the
history has doubled (16, 32, 64, … arrivals; on every arrival once the history is full), reported when the
rate or a length moved by `REFINE_CHANGE` or more from the standing estimate: a first estimate from 16 gaps
can be 30 % off. No timer is involved: only arrivals move the estimate. benchmarks/drift_detect.py measures
false re-plans per 10 000 steady arrivals and how many arrivals a ×4 change takes to be found
(docs/serving.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edpilot.serving.traffic import Traffic

MIN_MEAN_GAP_S = 1e-6  # requests in the same instant: a burst, not an infinite rate
LOG_LENGTH_VAR_FLOOR = 0.01  # (10 %)² on the log scale, so constant lengths do not make every wiggle significant
UNIFORM_GAP_CV = 0.5  # gaps whose coefficient of variation is below this look evenly spaced, not Poisson
REFINE_CHANGE = 0.10  # a steady-state refinement is reported when the rate or a length moved by 10 % or more
MIN_LENGTH_CHANGE_TOKENS = 8  # a prompt going from 2 to 3 tokens is 50 % longer, and changes nothing worth a re-plan
TAIL_MARGIN = 1.5  # the bar stays this far (in log) beyond the largest swing the steady history itself made
YOUNG_Z = 4.0  # a young server's split: this many sd of a ratio of two Poisson mean gaps
YOUNG_MIN_BEFORE = 12  # gaps before a young server's split
YOUNG_MIN_AFTER = 24  # gaps after it: fewer, and a heavy-tailed stream's short runs of small gaps look like a rise
YOUNG_MIN_KEPT = 8  # a young drift keeps at least this many gaps after the likeliest change
YOUNG_GAP_CLIP = 10.0  # a young history's gap counts at most this many median gaps: a pause is not a rate
YOUNG_SUM = 8  # overdispersion is measured on sums of this many gaps
YOUNG_TIE = 0.01  # a gap below this fraction of the mean is an arrival stamped with the one before it
YOUNG_MAX_TIES = 0.25  # a young history with more ties than this is clumped: no young test
GAP_CLIP = 5.0  # a gap counts at most this many 95th-percentile gaps of the standing estimate: a pause is not a rate


@dataclass(frozen=True)
class TrafficChange:
    """A new traffic estimate and why it was made: the `first` one, a `drift`, or a `refined` drift estimate."""

    traffic: Traffic
    reason: str
    kind: Literal["first", "drift", "refined"] = "drift"


class TrafficEstimator:
    """Feeds on arrivals (clock time, prompt and output tokens); says when the traffic has changed."""

    def __init__(
        self,
        *,
        requests_per_round: int,
        first_estimate_after: int = 16,
        min_segment: int = 20,
        max_history: int = 400,
        threshold: float = 24.0,
        recent: int = 32,
        z: float = 5.0,
        min_rate_ratio: float = 1.5,
        min_length_change: float = 0.25,
    ) -> None:
        self.requests_per_round = requests_per_round
        self.first_estimate_after, self.min_segment, self.threshold = first_estimate_after, min_segment, threshold
        self.recent, self.z = recent, z
        self.min_rate_ratio, self.min_length_change = min_rate_ratio, min_length_change
        self._gaps_s, self._prompt, self._output = (_Window(max_history) for _ in range(3))
        self._last_arrival_s: float | None = None
        self._refine_at: int | None = None
        self._estimated_from = 0  # gaps behind the current estimate
        self._clip_s = math.inf  # longest gap that counts (s), set with each estimate from the raw gaps
        self._spread: dict[int, tuple[float, float]] = {}  # n -> spread of n-gap log sums in the last long history
        self.current: Traffic | None = None

    def observe(self, arrival_s: float, *, prompt_tokens: int, output_tokens: int) -> TrafficChange | None:
        """One arrival; returns a TrafficChange when there is a first estimate or a detected drift."""
        if self._last_arrival_s is not None:
            self._gaps_s.append(max(0.0, arrival_s - self._last_arrival_s))
            self._prompt.append(math.log(max(1, prompt_tokens)))
            self._output.append(math.log(max(1, output_tokens)))
        self._last_arrival_s = arrival_s
        if self.current is None:
            if len(self._gaps_s) < self.first_estimate_after:
                return None
            self.current = self._estimate()
            reason = f"first estimate from {len(self._gaps_s)} arrivals: {_describe(self.current)}"
            return TrafficChange(self.current, reason, kind="first")
        if self._refine_at is None and len(self._gaps_s) >= min(2 * self._estimated_from, self._gaps_s.capacity):
            change = self._refine_steady()
            if change is not None:
                return change
        if self._refine_at is not None and len(self._gaps_s) >= self._refine_at:
            self._refine_at = None
            self._drop_oldest(self.min_segment)
            self.current = self._estimate()
            reason = f"refined from the {len(self._gaps_s)} arrivals since the drift: {_describe(self.current)}"
            return TrafficChange(self.current, reason, kind="refined")
        return self._check_drift()

    def _refine_steady(self) -> TrafficChange | None:
        """Re-estimate from the grown (or, once full, sliding) history; report it when it moved materially."""
        before, after = self.current, self._estimate()
        assert before is not None
        moved = max(
            abs(after.rate_per_s / before.rate_per_s - 1),
            abs(after.prompt_tokens / before.prompt_tokens - 1),
            abs(after.output_tokens / before.output_tokens - 1),
        )
        if moved < REFINE_CHANGE and after.arrivals == before.arrivals:
            return None  # the reported estimate stands
        self.current = after
        reason = f"refined from {len(self._gaps_s)} arrivals: {_describe(before)} -> {_describe(after)}"
        return TrafficChange(after, reason, kind="refined")

    def _drop_oldest(self, count: int) -> None:
        for history in (self._gaps_s, self._prompt, self._output):
            history.drop_oldest(count)

    def _check_drift(self) -> TrafficChange | None:
        change = self._check_rate()
        if change is not None:
            return change
        gaps = self._gaps_s.values
        if gaps.size < 2 * self.min_segment:
            return None
        tests = [(name, *_mean_shift_scan(values.values, self.min_segment)) for name, values in self._lengths()]
        for name, stat, split in sorted(tests, key=lambda t: -t[1]):
            if stat < self.threshold or split >= gaps.size - self.min_segment or not self._matters(name, split):
                continue  # a split at the edge may lie later still: wait for the arrivals that say where
            return self._drifted(name, split, f"change-point statistic {stat:.1f} > {self.threshold:g}")
        return None

    def _clipped(self) -> np.ndarray:
        """The gaps (s) as they count: each at most the standing estimate's clip."""
        clipped: np.ndarray = np.minimum(self._gaps_s.values, self._clip_s)
        return clipped

    def _check_rate(self) -> TrafficChange | None:
        """The last n gaps against the history before them, n = `recent`, 2·`recent`, 4·`recent` (docstring)."""
        gaps = self._clipped()
        if self.recent not in self._spread and gaps.size < 5 * self.recent:
            return self._check_young_rate(gaps)
        for n in (self.recent, 2 * self.recent, 4 * self.recent):
            if gaps.size < 2 * n:
                return None
            before, recent = gaps[:-n], gaps[-n:]
            ratio = max(float(before.mean()), MIN_MEAN_GAP_S) / max(float(recent.mean()), MIN_MEAN_GAP_S)
            shift = abs(math.log(ratio))
            floor = max(math.log(self.min_rate_ratio), self.z / math.sqrt(n))
            if shift < floor:
                continue
            spread_sd, spread_max = _log_sum_spread(before, n)
            remembered = self._spread.get(n)
            if remembered is None and before.size < 4 * n:
                return None  # a short history shows too little of its own spread to test against
            if remembered is not None:
                spread_sd, spread_max = max(spread_sd, remembered[0]), max(spread_max, remembered[1])
            if before.size >= 4 * n:
                self._spread[n] = (spread_sd, spread_max)  # the widest seen: a short history shows less
            bar = max(floor, self.z * spread_sd, TAIL_MARGIN * spread_max)
            if shift >= bar and not self._confirmed(gaps, n, ratio):
                return None
            if shift >= bar:
                why = f"last {n} arrivals {ratio:.2g}× the rate before, bar {math.exp(bar):.2g}×"
                return self._drifted("arrival rate", gaps.size - n // 2, why)
        return None

    def _check_young_rate(self, gaps: np.ndarray) -> TrafficChange | None:
        """A young server's history, scanned for the split where the mean gap changed most (module docstring)."""
        size = gaps.size
        if size < YOUNG_MIN_BEFORE + YOUNG_MIN_AFTER:
            return None
        if float(np.mean(gaps < YOUNG_TIE * float(gaps.mean()))) > YOUNG_MAX_TIES:
            return None  # clumped arrivals are not Poisson at any short scale: wait for a long history
        gaps = np.minimum(gaps, YOUNG_GAP_CLIP * float(np.median(gaps)))
        k, before_s, after_s = _split_means(gaps, YOUNG_MIN_BEFORE, size - YOUNG_MIN_AFTER)
        split = int(k[np.argmax(np.abs(_ratio_z(before_s / after_s, 2.0 * k, 2.0 * (size - k))))])
        before, after = gaps[:split], gaps[split:]
        ratio = max(float(before.mean()), MIN_MEAN_GAP_S) / max(float(after.mean()), MIN_MEAN_GAP_S)
        spread = _dispersion(before, after)
        z = float(_ratio_z(np.asarray(ratio), 2.0 * split / spread, 2.0 * after.size / spread))
        if abs(z) < YOUNG_Z or abs(math.log(ratio)) < math.log(self.min_rate_ratio):
            return None
        if not self._holds_in_halves(gaps, after.size, ratio, floor=math.log(self.min_rate_ratio)):
            return None  # a clump sits in one half of what follows the split; a change is in both
        why = f"last {after.size} arrivals {ratio:.2g}× the rate of the {split} before, {abs(z):.1f} sd"
        likeliest = _change_point(gaps, YOUNG_MIN_BEFORE, size - YOUNG_MIN_KEPT)
        change = self._drifted("arrival rate", max(likeliest, size - self.first_estimate_after), why)
        self._refine_at = None  # the history starts at the change, or the last 16 gaps: refined as it doubles
        return change

    def _confirmed(self, gaps: np.ndarray, n: int, ratio: float) -> bool:
        """A drift seen in the last n gaps holds over the last 1.5·n too, or in each half of the last n on its own
        (a clump passes out of the longer window or sits in one half; a change stays in both)."""
        floor = max(math.log(self.min_rate_ratio), self.z / math.sqrt(n // 2))
        return self._holds_over(gaps, int(1.5 * n), ratio) or self._holds_in_halves(gaps, n, ratio, floor=floor)

    def _holds_over(self, gaps: np.ndarray, m: int, ratio: float) -> bool:
        """The last m gaps against the history before them show the change beyond their own bar."""
        if gaps.size < 2 * m:
            return True
        before, recent = gaps[:-m], gaps[-m:]
        r = max(float(before.mean()), MIN_MEAN_GAP_S) / max(float(recent.mean()), MIN_MEAN_GAP_S)
        if (r > 1) != (ratio > 1):
            return False
        floor = max(math.log(self.min_rate_ratio), self.z / math.sqrt(m))
        sd, mx = _log_sum_spread(before, m)
        return abs(math.log(r)) >= max(floor, self.z * sd, TAIL_MARGIN * mx)

    def _holds_in_halves(self, gaps: np.ndarray, n: int, ratio: float, *, floor: float) -> bool:
        """Each half of the last n gaps alone shows the change against the history before them, beyond `floor`
        in log (the Poisson floor of n/2 gaps, for the n-gap test: the 1.5·n window still holds old gaps for a
        while after a real change)."""
        before_s = max(float(gaps[:-n].mean()), MIN_MEAN_GAP_S)
        half = n // 2
        for part in (gaps[-n:-half], gaps[-half:]):
            r = before_s / max(float(part.mean()), MIN_MEAN_GAP_S)
            if (r > 1) != (ratio > 1) or abs(math.log(r)) < floor:
                return False
        return True

    def _drifted(self, name: str, split: int, why: str) -> TrafficChange:
        """Restart the history at `split` and report the drift."""
        before = self.current
        assert before is not None
        self._drop_oldest(split)
        self._refine_at = 4 * self.min_segment
        self.current = self._estimate()
        since = len(self._gaps_s)
        reason = f"{name} changed ({why}, {since} arrivals since): {_describe(before)} -> {_describe(self.current)}"
        return TrafficChange(self.current, reason)

    def _lengths(self) -> list[tuple[str, _Window]]:
        return [("prompt length", self._prompt), ("output length", self._output)]

    def _matters(self, name: str, split: int) -> bool:
        values = (self._prompt if name == "prompt length" else self._output).values
        before, after = math.exp(values[:split].mean()), math.exp(values[split:].mean())
        change = max(before, after) / min(before, after) - 1
        return change >= self.min_length_change and abs(after - before) >= MIN_LENGTH_CHANGE_TOKENS

    def _estimate(self) -> Traffic:
        self._estimated_from = len(self._gaps_s)
        self._clip_s = max(GAP_CLIP * float(np.quantile(self._gaps_s.values, 0.95)), MIN_MEAN_GAP_S)
        gaps = self._clipped()
        mean_gap_s = max(float(gaps.mean()), MIN_MEAN_GAP_S)
        cv = float(gaps.std() / mean_gap_s)
        return Traffic(
            arrivals="uniform" if cv < UNIFORM_GAP_CV else "poisson",
            rate_per_s=1.0 / mean_gap_s,
            prompt_tokens=max(1.0, float(np.exp(np.mean(self._prompt.values)))),
            output_tokens=max(1.0, float(np.exp(np.mean(self._output.values)))),
            requests_per_round=self.requests_per_round,
        )


class _Window:
    """The last `capacity` values in arrival order, read as one numpy array without a copy (a deque is copied
    into one on every read: most of an arrival's cost on a full history)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data = np.empty(2 * capacity)
        self._start = self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, value: float) -> None:
        if self._end == self._data.size:  # slide the window to the front: once every `capacity` appends
            self._data[: len(self)] = self._data[self._start : self._end]
            self._start, self._end = 0, len(self)
        self._data[self._end] = value
        self._end += 1
        if len(self) > self.capacity:
            self._start += 1

    def drop_oldest(self, count: int) -> None:
        self._start += min(count, len(self))

    @property
    def values(self) -> np.ndarray:
        """The values, oldest first: a view, valid until the next append."""
        return self._data[self._start : self._end]


def _log_sum_spread(gaps_s: np.ndarray, n: int) -> tuple[float, float]:
    """Standard deviation, and largest deviation from the mean, of log(sum of n consecutive gaps) over `gaps_s`."""
    if gaps_s.size < n + 2:
        return 0.0, 0.0
    csum = np.concatenate([[0.0], np.cumsum(gaps_s)])
    logs = np.log(np.maximum(csum[n:] - csum[:-n], n * MIN_MEAN_GAP_S))
    deviation = np.abs(logs - math.log(max(float(gaps_s.mean()) * n, n * MIN_MEAN_GAP_S)))
    return float(logs.std()), float(deviation.max())


def _dispersion(before_s: np.ndarray, after_s: np.ndarray) -> float:
    """How many times a Poisson stream's variance two segments of gaps show, at least 1: the squared coefficient of
    variation of the gaps about their own segment's mean, pooled, or of `YOUNG_SUM`-gap sums in either segment."""
    scaled = [gaps / max(float(gaps.mean()), MIN_MEAN_GAP_S) for gaps in (before_s, after_s)]
    pooled = float(sum(np.sum((s - 1.0) ** 2) for s in scaled)) / max(before_s.size + after_s.size - 2, 1)
    return max(1.0, pooled, *(_sum_dispersion(s, YOUNG_SUM) for s in scaled))


def _sum_dispersion(gaps: np.ndarray, k: int) -> float:
    """Variance of k-gap sums over `gaps` (their mean 1) against a Poisson stream's, 1/k; 1 when too few."""
    if gaps.size < 2 * k:
        return 1.0
    csum = np.concatenate([[0.0], np.cumsum(gaps)])
    return k * float((csum[k:] - csum[:-k]).var()) / max(k * float(gaps.mean()), k * MIN_MEAN_GAP_S) ** 2


def _split_means(gaps_s: np.ndarray, low: int, high: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every split k (low ≤ k ≤ high: the first k gaps before it) and the mean gap before and after each."""
    k = np.arange(low, high + 1)
    csum = np.cumsum(gaps_s)
    before_s = np.maximum(csum[k - 1] / k, MIN_MEAN_GAP_S)
    after_s = np.maximum((csum[-1] - csum[k - 1]) / (gaps_s.size - k), MIN_MEAN_GAP_S)
    return k, before_s, after_s


def _change_point(gaps_s: np.ndarray, low: int, high: int) -> int:
    """The split (low ≤ k ≤ high) of the likeliest single change in the mean of exponential gaps."""
    k, before_s, after_s = _split_means(gaps_s, low, high)
    return int(k[np.argmax(-(k * np.log(before_s) + (gaps_s.size - k) * np.log(after_s)))])


def _ratio_z(ratio: np.ndarray, dof_before: np.ndarray | float, dof_after: np.ndarray | float) -> np.ndarray:
    """Normal deviate of a ratio of two mean gaps under one Poisson rate, an F(dof_before, dof_after) variate
    (Paulson's cube-root approximation; positive when the rate rose)."""
    a, b = 2.0 / (9.0 * dof_before), 2.0 / (9.0 * dof_after)
    cube = np.cbrt(ratio)
    z: np.ndarray = ((1.0 - b) * cube - (1.0 - a)) / np.sqrt(b * cube**2 + a)
    return z


def _mean_shift_scan(values: np.ndarray, min_segment: int) -> tuple[float, int]:
    """Largest squared two-sample t statistic of one shift in the mean, and where it splits."""
    n = values.size
    k = np.arange(min_segment, n - min_segment + 1)
    csum, csq = np.cumsum(values), np.cumsum(values**2)
    m1, m2 = csum[k - 1] / k, (csum[-1] - csum[k - 1]) / (n - k)
    ss = (csq[k - 1] - k * m1**2) + (csq[-1] - csq[k - 1] - (n - k) * m2**2)
    var = np.maximum(ss / (n - 2), LOG_LENGTH_VAR_FLOOR)
    stat = (m1 - m2) ** 2 / (var * (1.0 / k + 1.0 / (n - k)))
    best = int(np.argmax(stat))
    return float(stat[best]), int(k[best])


def _describe(t: Traffic) -> str:
    return f"{t.rate_per_s:.3g} req/s {t.arrivals}, prompt {t.prompt_tokens:.0f} tok, output {t.output_tokens:.0f} tok"
