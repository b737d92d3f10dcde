"""The live traffic estimator: first estimate, no false alarms on steady traffic, drift found and re-estimated."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from edpilot.server.estimator import TrafficEstimator, _ratio_z, _Window


def feed(est, gaps_s, *, prompt=100, output=50, start_s=0.0):
    changes, t = [], start_s
    for i, gap in enumerate(gaps_s):
        t += gap
        change = est.observe(t, prompt_tokens=prompt, output_tokens=output)
        if change is not None:
            changes.append((i, change))
    return changes, t


def test_first_estimate_after_enough_arrivals():
    est = TrafficEstimator(requests_per_round=32, first_estimate_after=16)
    changes, _ = feed(est, np.full(40, 0.5))
    assert len(changes) == 1
    i, change = changes[0]
    assert change.kind == "first" and i == 16
    assert change.traffic.rate_per_s == pytest.approx(2.0)
    assert change.traffic.arrivals == "uniform"
    assert change.traffic.prompt_tokens == pytest.approx(100) and change.traffic.output_tokens == pytest.approx(50)


@pytest.mark.parametrize("seed", range(5))
def test_steady_poisson_traffic_raises_no_drift(seed):
    rng = np.random.default_rng(seed)
    est = TrafficEstimator(requests_per_round=32)
    changes, _ = feed(est, rng.exponential(1 / 3.0, size=3000))
    assert changes[0][1].kind == "first"
    assert all(c.kind == "refined" for _, c in changes[1:])  # never a drift
    assert len(changes) < 15
    assert est.current is not None and est.current.arrivals == "poisson"
    assert est.current.rate_per_s == pytest.approx(3.0, rel=0.12)  # the first 16-gap estimate is refined


@pytest.mark.parametrize(("seed", "factor"), [(0, 4.0), (1, 4.0), (2, 0.25)])
def test_a_4x_rate_change_is_found_and_the_new_rate_estimated(seed, factor):
    rng = np.random.default_rng(seed)
    est = TrafficEstimator(requests_per_round=32)
    before, t = feed(est, rng.exponential(1 / 2.0, size=300))
    after, _ = feed(est, rng.exponential(1 / (2.0 * factor), size=300), start_s=t)
    assert before[0][1].kind == "first" and all(c.kind == "refined" for _, c in before[1:])
    kinds = [c.kind for _, c in after]
    assert kinds.count("drift") == 1 and all(k == "refined" for k in kinds if k != "drift")
    i, change = next((i, c) for i, c in after if c.kind == "drift")
    assert i < 50  # found within the next 50 arrivals
    assert "arrival rate" in change.reason
    assert change.traffic.rate_per_s == pytest.approx(2.0 * factor, rel=0.6)
    assert est.current.rate_per_s == pytest.approx(2.0 * factor, rel=0.3)


def test_an_output_length_change_is_found():
    rng = np.random.default_rng(3)
    est = TrafficEstimator(requests_per_round=32)
    _, t = feed(est, rng.exponential(0.5, size=200), output=64)
    after, _ = feed(est, rng.exponential(0.5, size=200), output=256, start_s=t)
    assert after and after[0][1].kind == "drift" and "output length" in after[0][1].reason
    assert after[0][1].traffic.output_tokens == pytest.approx(256)


def jittered_gaps(rate: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform arrivals stamped late by up to one gap (HTTP and event-loop jitter), in arrival order."""
    t = np.sort(np.arange(1, count + 1) / rate + rng.uniform(0.0, 1.0 / rate, size=count))
    return np.diff(t, prepend=0.0)


def drifts(changes) -> list[int]:
    return [i for i, c in changes if c.kind == "drift"]


@pytest.mark.parametrize("rate", [1.0, 10.0, 100.0])
def test_jittered_steady_arrivals_raise_no_drift(rate):
    est = TrafficEstimator(requests_per_round=32)
    changes, _ = feed(est, jittered_gaps(rate, 5000, np.random.default_rng(int(rate))))
    assert drifts(changes) == []
    assert est.current.rate_per_s == pytest.approx(rate, rel=0.1)  # reported again once 10 % off


@pytest.mark.parametrize("rate", [16.0, 60.0])
def test_a_quiet_gap_between_two_load_phases_at_one_rate_raises_no_drift(rate):
    rng = np.random.default_rng(5)
    gaps = rng.exponential(1 / rate, size=2000)
    gaps[1000] += 10.0  # nobody sends for 10 s, then the load resumes at the same rate
    est = TrafficEstimator(requests_per_round=32)
    changes, _ = feed(est, gaps)
    assert drifts(changes) == []
    assert est.current.rate_per_s == pytest.approx(rate, rel=0.15)  # the pause is not a rate


def test_clients_released_together_raise_no_drift_and_a_4x_change_is_still_found():
    rng = np.random.default_rng(9)

    def bursts(rate, count):  # bursts of 8 every 8/λ s, each stamped late by up to a tenth of a gap
        t = np.sort((np.arange(count) // 8 + 1) * 8 / rate + rng.uniform(0.0, 0.1 / rate, size=count))
        return np.diff(t, prepend=0.0)

    est = TrafficEstimator(requests_per_round=32)
    steady, t = feed(est, bursts(20.0, 3000))
    assert drifts(steady) == []
    after, _ = feed(est, bursts(80.0, 200), start_s=t)
    assert drifts(after) and drifts(after)[0] < 50


def stalled_gaps(rate: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson arrivals through an event loop that stalls for half of every 24/λ s and stamps what arrived
    meanwhile at once (benchmarks/drift_detect.py's `stalled` stream)."""
    period_s = 24.0 / rate
    t = np.cumsum(rng.exponential(1.0 / rate, size=count))
    phase = np.mod(t, period_s)
    t = np.where(phase < period_s / 2, t - phase + period_s / 2, t)
    return np.diff(np.sort(t), prepend=0.0)


@pytest.mark.parametrize("seed", [5, 6, 10])
def test_a_stalling_event_loop_raises_no_drift_before_its_spread_is_known_and_a_4x_change_is_still_found(seed):
    # seeds 5, 6 and 10 each raised false drifts within their first 450 arrivals when the test ran on a
    # history too short to show the stream's clumps (seed 6 four in a row, up to an estimate of 8e5 req/s)
    rng = np.random.default_rng(seed)
    est = TrafficEstimator(requests_per_round=32)
    steady, t = feed(est, stalled_gaps(10.0, 600, rng))
    assert drifts(steady) == []
    assert est.current.rate_per_s == pytest.approx(10.0, rel=0.2)
    after, _ = feed(est, stalled_gaps(40.0, 200, rng), start_s=t)
    assert drifts(after) and drifts(after)[0] < 50


@pytest.mark.parametrize("seed", range(1000, 1010))
def test_a_4x_rise_on_a_stalling_event_loop_is_found_within_50_arrivals(seed):
    # benchmarks/drift_detect.py's detection seeds: with only the 1.5·n confirmation, 1008 and 1009 took 62
    # and 72 arrivals (the longer window still held old gaps); each half of the last n now confirms on its own
    rng = np.random.default_rng(seed)
    est = TrafficEstimator(requests_per_round=32)
    steady, t = feed(est, stalled_gaps(10.0, 400, rng))
    assert drifts(steady) == []
    after, _ = feed(est, stalled_gaps(40.0, 400, rng), start_s=t)
    assert drifts(after) and drifts(after)[0] + 1 <= 50
    assert est.current.rate_per_s == pytest.approx(40.0, rel=0.3)


def poisson_gaps(rate: float, count: int, rng: np.random.Generator) -> np.ndarray:
    return rng.exponential(1 / rate, size=count)


@pytest.mark.parametrize("seed", range(1000, 1010))
@pytest.mark.parametrize(("history", "factor"), [(32, 4.0), (32, 0.25), (64, 4.0), (64, 0.25)])
def test_a_young_servers_4x_change_is_found_within_50_arrivals(seed, history, factor):
    # before the young test, no drift was raised within 200 arrivals of a change after 32 or 64 (the n-gap test
    # waited for 160 gaps of history, and then compared with a history half made of the new rate)
    rng = np.random.default_rng(seed)
    est = TrafficEstimator(requests_per_round=32)
    before, t = feed(est, poisson_gaps(2.0, history, rng))
    after, _ = feed(est, poisson_gaps(2.0 * factor, 200, rng), start_s=t)
    assert drifts(before) == []
    assert len(drifts(after)) == 1 and drifts(after)[0] + 1 <= 50
    change = next(c for _, c in after if c.kind == "drift")
    assert "arrival rate" in change.reason
    assert est.current.rate_per_s == pytest.approx(2.0 * factor, rel=0.3)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("quiet_gap", [False, True])
def test_a_rise_after_68_arrivals_at_04_req_s_is_a_drift(seed, quiet_gap):
    # docs/serving.md's young server: after 68 arrivals at 0.4 req/s (with or without a 10 s pause in them) a rise
    # to 2 req/s raised no drift within 260 arrivals, and the estimate stood at 0.51-0.70 req/s 60 arrivals on
    rng = np.random.default_rng(seed)
    gaps = poisson_gaps(0.4, 68, rng)
    if quiet_gap:
        gaps[40] += 10.0
    est = TrafficEstimator(requests_per_round=32)
    before, t = feed(est, gaps)
    new = poisson_gaps(2.0, 60, rng)
    after, _ = feed(est, new, start_s=t)
    assert drifts(before) == []
    assert drifts(after) and drifts(after)[0] + 1 <= 50
    assert est.current.rate_per_s == pytest.approx(1 / new.mean(), rel=0.3)  # the rate these arrivals drew


@pytest.mark.parametrize(
    "gaps",
    [poisson_gaps(1.0, 200, np.random.default_rng(seed)) for seed in range(20)]
    + [jittered_gaps(rate, 200, np.random.default_rng(7)) for rate in (1.0, 100.0)]
    + [np.full(200, 0.25)],
)
def test_steady_young_streams_raise_no_drift(gaps):
    est = TrafficEstimator(requests_per_round=32)
    changes, _ = feed(est, gaps)
    assert drifts(changes) == []
    assert est.current.rate_per_s == pytest.approx(1.0 / gaps.mean(), rel=0.15)


@pytest.mark.parametrize("seed", range(5))
def test_a_quiet_gap_in_a_young_servers_history_raises_no_drift(seed):
    gaps = poisson_gaps(1.0, 200, np.random.default_rng(seed))
    gaps[64] += 10.0  # ten mean gaps of silence, then the same rate
    est = TrafficEstimator(requests_per_round=32)
    changes, _ = feed(est, gaps)
    assert drifts(changes) == []


@pytest.mark.parametrize("seed", [6, 17, 20])
def test_a_young_stalling_event_loop_raises_no_drift(seed):
    # a young test that took every stream for Poisson raised a drift 33 arrivals into these seeds: the first
    # stall stamped 17 arrivals at once, and the 16 after them looked like a fall to a millionth of the rate
    est = TrafficEstimator(requests_per_round=32)
    changes, _ = feed(est, stalled_gaps(1.0, 250, np.random.default_rng(seed)))
    assert drifts(changes) == []


def test_the_ratio_deviate_has_a_normal_tail_under_one_poisson_rate():
    rng = np.random.default_rng(0)
    for before, after in [(12, 16), (16, 100), (100, 16)]:
        ratio = (rng.standard_gamma(before, 400_000) / before) / (rng.standard_gamma(after, 400_000) / after)
        z = _ratio_z(ratio, 2.0 * before, 2.0 * after)
        assert np.mean(z > 3.0) == pytest.approx(1.35e-3, rel=0.2)  # the normal tail, on each side
        assert np.mean(z < -3.0) == pytest.approx(1.35e-3, rel=0.2)
    assert _ratio_z(np.asarray(4.0), 64.0, 64.0) > 4.0  # a 4x rise, 32 gaps before and after


@pytest.mark.parametrize("seed", [8, 9, 20, 25, 26, 33])
def test_a_young_heavy_tailed_stream_raises_no_drift(seed):
    # gamma gaps of shape 1/2 (coefficient of variation 1.41): with 16 gaps after the split and each segment's
    # dispersion taken from its 8-gap sums alone, these seeds raised a drift in their first 200 arrivals (a run of
    # 16 small gaps looked like a 4x rise); seed 38 still does (docs/serving.md: 2 of 200 starts)
    est = TrafficEstimator(requests_per_round=32)
    changes, _ = feed(est, np.random.default_rng(seed).gamma(0.5, 2.0, size=200))
    assert drifts(changes) == []


def test_a_window_holds_what_a_bounded_deque_holds_through_appends_slides_and_drops():
    rng = np.random.default_rng(7)
    window, reference = _Window(5), deque(maxlen=5)
    for step in range(200):
        if rng.random() < 0.1:
            count = int(rng.integers(0, 7))
            window.drop_oldest(count)
            for _ in range(min(count, len(reference))):
                reference.popleft()
        else:
            window.append(float(step))
            reference.append(float(step))
        assert window.values.tolist() == list(reference)
        assert len(window) == len(reference)
