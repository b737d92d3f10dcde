"""The sans-IO static batcher as a live server drives it: offers, polls, deadlines, partial batches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edpilot.errors import ConfigError
from edpilot.serving import StaticBatcher
from edpilot.workload import Request


def req(i: int, t: float) -> Request:
    return Request(i, t, "x", 1, 1)


def test_full_batches_go_at_once_oldest_first():
    b: StaticBatcher[Request] = StaticBatcher(3)
    for i in range(7):
        b.offer(req(i, float(i)), float(i))
    assert [r.request_id for r in b.poll(7.0)] == [0, 1, 2]
    assert [r.request_id for r in b.poll(7.0)] == [3, 4, 5]
    assert b.poll(7.0) is None and len(b) == 1
    assert b.next_deadline_s() is None  # no max wait: a lone request waits for company
    assert [r.request_id for r in b.flush()] == [6] and len(b) == 0


def test_max_wait_flushes_a_partial_batch_at_its_deadline():
    b: StaticBatcher[Request] = StaticBatcher(4, max_wait_s=2.0)
    b.offer(req(0, 10.0), 10.0)
    b.offer(req(1, 11.0), 11.0)
    assert b.next_deadline_s() == 12.0  # the oldest arrival + max wait
    assert b.poll(11.999) is None
    assert [r.request_id for r in b.poll(12.0)] == [0, 1]
    assert b.next_deadline_s() is None and b.poll(100.0) is None


def test_a_full_queue_is_due_now():
    b: StaticBatcher[Request] = StaticBatcher(2, max_wait_s=5.0)
    b.offer(req(0, 1.0), 1.0)
    b.offer(req(1, 1.5), 1.5)
    assert b.next_deadline_s() == 1.0
    assert len(b.poll(1.5)) == 2


def test_batch_size_changes_apply_to_what_is_queued():
    b: StaticBatcher[Request] = StaticBatcher(8)
    for i in range(5):
        b.offer(req(i, 0.0), 0.0)
    assert b.poll(0.0) is None
    b.set_batch_size(2)
    assert [r.request_id for r in b.poll(0.0)] == [0, 1]


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_batch_sizes_are_refused(bad):
    with pytest.raises(ConfigError):
        StaticBatcher(bad)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_bad_max_wait_is_refused(bad):
    with pytest.raises(ConfigError, match="max wait"):
        StaticBatcher(2, max_wait_s=bad)


def test_a_request_from_the_future_is_refused():
    with pytest.raises(ValueError, match="after now"):
        StaticBatcher(2).offer(req(0, 5.0), 4.0)


@settings(max_examples=80, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=30),
    batch_size=st.integers(min_value=1, max_value=6),
    max_wait=st.one_of(st.none(), st.floats(min_value=0.0, max_value=4.0)),
    poll_every=st.floats(min_value=0.05, max_value=2.0),
)
def test_event_loop_driving_serves_each_request_once_in_order(gaps, batch_size, max_wait, poll_every):
    """A server-like loop: poll on a timer and at every arrival; nothing lost, FIFO, deadlines kept."""
    arrivals = np.cumsum(gaps)
    b: StaticBatcher[Request] = StaticBatcher(batch_size, max_wait_s=max_wait)
    events = sorted({*arrivals.tolist(), *np.arange(0.0, arrivals[-1] + 10.0, poll_every).tolist()})
    served: list[tuple[int, float]] = []
    i = 0
    for now in events:
        while i < len(arrivals) and arrivals[i] <= now:
            b.offer(req(i, float(arrivals[i])), now)
            i += 1
        while (batch := b.poll(now)) is not None:
            assert 1 <= len(batch) <= batch_size
            if len(batch) < batch_size:
                assert max_wait is not None and now >= batch[0].arrival_s + max_wait
            served += [(r.request_id, now) for r in batch]
    served += [(r.request_id, events[-1]) for r in b.flush()]
    assert [rid for rid, _ in served] == list(range(len(arrivals)))
    if max_wait is not None:  # nobody waits much past the deadline plus one timer tick
        assert all(t - arrivals[rid] <= max_wait + poll_every + 1e-9 for rid, t in served)
