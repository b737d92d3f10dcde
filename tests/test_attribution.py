"""Where an EDP gain comes from: exact values on constructed cases, and the latency split the runner records."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from edpilot.attribution import PARTS, Side, attribute, attribute_stats
from edpilot.runner import ServedBatch, summarize
from edpilot.workload import Request

LN8 = math.log(8.0)


def test_gain_split_into_fill_queue_service_and_energy_exactly():
    base = Side(energy_per_request_j=10.0, fill_wait_s=13.5, queue_wait_s=0.0, service_s=2.5)  # L = 16
    chosen = Side(energy_per_request_j=10.39, fill_wait_s=0.0, queue_wait_s=0.5, service_s=1.5)  # L = 2
    att = attribute(base, chosen)
    assert att.edp_ratio == pytest.approx(10.39 * 2 / (10.0 * 16))
    # logarithmic mean of the latencies: (2 - 16) / ln(2 / 16) = 14 / ln 8
    assert att.terms["fill_wait"] == pytest.approx(-13.5 * LN8 / 14)
    assert att.terms["queue_wait"] == pytest.approx(0.5 * LN8 / 14)
    assert att.terms["service"] == pytest.approx(-1.0 * LN8 / 14)
    assert att.terms["energy"] == pytest.approx(math.log(1.039))
    assert sum(att.terms.values()) == pytest.approx(math.log(att.edp_ratio))
    assert math.prod(att.factor(p) for p in PARTS) == pytest.approx(att.edp_ratio)
    assert sum(att.share_pct(p) for p in PARTS) == pytest.approx(100.0)
    assert att.share_pct("fill_wait") == pytest.approx(100 * (-13.5 * LN8 / 14) / math.log(0.1298750))
    assert att.share_pct("energy") < 0  # energy rose: it worked against the gain
    assert att.edp_change_pct == pytest.approx(-87.0125)


def test_equal_latency_puts_the_whole_change_on_energy_and_the_parts_cancel():
    base = Side(5.0, 1.0, 0.5, 2.5)
    chosen = Side(4.0, 2.0, 0.0, 2.0)  # same L = 4 s
    att = attribute(base, chosen)
    assert att.terms["fill_wait"] == pytest.approx(0.25)
    assert att.terms["queue_wait"] == pytest.approx(-0.125)
    assert att.terms["service"] == pytest.approx(-0.125)
    assert att.terms["energy"] == pytest.approx(math.log(0.8))
    assert att.share_pct("energy") == pytest.approx(100.0)


def test_no_change_has_no_shares():
    side = Side(5.0, 1.0, 0.5, 2.5)
    att = attribute(side, side)
    assert att.edp_ratio == 1.0 and all(att.terms[p] == 0 for p in PARTS)
    assert att.share_pct("energy") is None


def test_attribution_from_summary_dicts_needs_every_number():
    base = {"energy_per_request_j": 10.0, "mean_fill_wait_s": 13.5, "mean_queue_wait_s": 0.0, "mean_service_s": 2.5}
    chosen = {**base, "mean_fill_wait_s": 1.5}
    att = attribute_stats(base, chosen)
    assert att is not None and att.to_dict()["parts"]["fill_wait"]["factor"] == pytest.approx(4.0 / 16.0)
    assert attribute_stats(base, {**chosen, "mean_queue_wait_s": None}) is None
    assert attribute_stats({**base, "energy_per_request_j": None}, chosen) is None


def _req(t: float) -> Request:
    return Request(request_id=int(t * 10), prompt="p", prompt_tokens=8, max_new_tokens=4, arrival_s=t)


def test_runner_splits_each_latency_into_fill_queue_and_service():
    batches = [
        ServedBatch(tuple(_req(t) for t in (0.0, 1.0, 2.0)), 2.0, 3.5, 30.0, (None,) * 3),
        # arrives while batch 1 runs: full at 3.2, starts when batch 1 ends at 3.5
        ServedBatch(tuple(_req(t) for t in (2.5, 3.0, 3.2)), 3.5, 5.5, 40.0, (None,) * 3),
    ]
    window = SimpleNamespace(duration_s=6.0, energy_j=80.0, meter_updates=None)
    obs = summarize(batches, window=window, energy_scope="total", batch_size=3)
    assert obs.mean_fill_wait_s == pytest.approx((2 + 1 + 0 + 0.7 + 0.2 + 0) / 6)
    assert obs.mean_queue_wait_s == pytest.approx((0 + 0 + 0 + 0.3 + 0.3 + 0.3) / 6)
    assert obs.mean_service_s == pytest.approx((1.5 * 3 + 2.0 * 3) / 6)
    assert obs.mean_fill_wait_s + obs.mean_queue_wait_s + obs.mean_service_s == pytest.approx(obs.mean_latency_s)
