"""The search's worst runs (issue 17): a better window found late is confirmed, a full-size probe confirms, and
limits are judged optimistically when exploring, pessimistically when choosing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edpilot.bench import default_scenarios, run_one
from edpilot.objective import Objective
from edpilot.search import SearchContext, make_strategy
from edpilot.search.edpilot import EdpilotStrategy
from edpilot.serving import Traffic
from edpilot.space import ConfigSpace
from tests.search.test_surprises import BATCHES, FREQS, _window


def _strategy(
    *, budget: int | None = None, slo_p95_s: float | None = None, traffic: Traffic | None = None
) -> EdpilotStrategy:
    space = ConfigSpace.grid(FREQS, BATCHES)
    ctx = SearchContext(
        space=space,
        objective=Objective("edp").bind(None),
        baseline=space.baseline(),
        traffic=traffic or Traffic(rate_per_s=1.0),
        budget=budget,
        slo_p95_s=slo_p95_s,
    )
    strategy = make_strategy("edpilot", ctx)
    assert isinstance(strategy, EdpilotStrategy)
    return strategy


def test_a_better_window_held_back_on_the_next_to_last_round_is_measured_again_in_the_last():
    """A lone sweet spot found one round before the budget ends is held back as a possible outlier; the last
    round re-measures it (a full round `best` can choose) instead of exploiting what was known before."""
    s = _strategy(budget=12)
    s.observe(s.ctx.baseline, _window(s.ctx.baseline))
    for _ in range(10):
        c = s.propose()
        s.observe(c, _window(c))
    unmeasured = [i for i in range(len(s.space)) if s.time.windows[i] == 0]
    spot = s.space.configs[unmeasured[0]]
    s.observe(spot, _window(spot, slow=0.5))  # round 11 of 12: twice as fast as the smooth surface says
    assert s.space.index(spot) in s.pending
    assert s.propose() == spot  # the last round
    s.observe(spot, _window(spot, slow=0.5))
    assert s.best() == spot


def test_a_probe_that_served_a_full_round_counts_toward_confirmation():
    """A probe of two batches at b ≥ half a round serves a whole round: it counts as a full round that kept up."""
    s = _strategy()
    s.observe(s.ctx.baseline, _window(s.ctx.baseline))
    big, small = s.space.configs[-2], s.space.configs[0]  # (1200 MHz, b 8), (300 MHz, b 1)
    for config, requests, kept in ((big, 32, 1.0), (small, 2, 0.0)):
        s._probe = config  # as `propose` marks a bounded probe
        s.observe(config, replace(_window(config), requests=requests))
        assert s.kept_rounds[s.space.index(config)] == kept


def test_limits_are_judged_optimistically_to_explore_and_pessimistically_to_choose():
    """With a p95 SLO, the exploring view admits every config the mean admits and more; the choosing view admits
    none the mean rejects, and rejects a measured config the mean admits only within its windows' noise."""
    s = _strategy(slo_p95_s=1e9)
    s.observe(s.ctx.baseline, _window(s.ctx.baseline))
    for _ in range(6):
        c = s.propose()
        s.observe(c, _window(c))
    p95 = s.outlook("mean").p95_latency_s
    measured = np.flatnonzero(s.time.windows > 0)
    edge = measured[np.argsort(p95[measured])[len(measured) // 2]]  # configs below it still meet the limit
    s.ctx = replace(s.ctx, slo_p95_s=float(p95[edge]) * 1.001)  # met at the mean by a hair only
    s._cache.clear()
    explore, mean, choose = (s.within_limits(view) for view in ("lcb", "mean", "ucb"))
    assert mean[edge] and not choose[edge]
    assert np.all(explore >= mean) and np.all(mean >= choose)
    assert explore.sum() > mean.sum()


def test_a_first_window_behind_by_more_than_a_hiccup_drops_its_config():
    """A config 3× slower than the smooth surface (a spike) falls behind in its first window: that window is held
    back as a possible outlier, but the config is dropped all the same and not served again. A first window only
    1.5× slow (within a plausible one-off hiccup) does not drop its config."""
    rate = 2.0
    s = _strategy(traffic=Traffic(rate_per_s=rate))
    space = s.space
    s.observe(space.baseline(), _window(space.baseline(), rate_per_s=rate))
    for _ in range(6):
        c = s.propose()
        s.observe(c, _window(c, rate_per_s=rate))
    rho = {c: rate * _window(c).mean_batch_s / c.batch_size for c in space}
    unmeasured = [c for c in space if s.time.windows[space.index(c)] == 0]
    spike = next(c for c in unmeasured if 0.7 <= rho[c] < 1.0)  # 3× slower: ρ ≥ 2.1
    hiccup = next(c for c in unmeasured if c != spike and 0.3 <= rho[c] < 0.6)  # 1.5× slower: still ρ < 0.9
    s.observe(spike, replace(_window(spike, slow=3.0, rate_per_s=rate), keeps_up=False))
    s.observe(hiccup, _window(hiccup, slow=1.5, rate_per_s=rate))
    assert space.index(spike) in s.pending  # held back, and dropped all the same
    assert s.behind[space.index(spike)] and not s.behind[space.index(hiccup)]
    for _ in range(8):
        c = s.propose()
        assert c != spike
        s.observe(c, _window(c, rate_per_s=rate))


def test_a_lower_clock_than_a_config_measured_behind_is_never_probed_whatever_the_fit_says():
    """A batch at a lower clock is never faster than at a higher one (same batch size): once (1200 MHz, b 1) is
    measured past capacity, no lower clock at b 1 may be probed, even where the smooth fit (bent here by hand, as a
    cliff elsewhere bends it) puts it far below capacity."""
    rate = 2.5
    s = _strategy(traffic=Traffic(arrivals="poisson", rate_per_s=rate))
    space = s.space
    s.observe(space.baseline(), _window(space.baseline(), rate_per_s=rate))
    top = next(c for c in space if c.freq_mhz == max(FREQS) and c.batch_size == 1)
    s.observe(top, replace(_window(top, rate_per_s=rate), keeps_up=False))
    assert rate * _window(top).mean_batch_s / top.batch_size > 1.0
    lower = [space.index(c) for c in space if c.batch_size == 1 and c.freq_mhz < max(FREQS)]
    s.time.mean[lower] = np.log(0.05)  # a fit that puts them at a tenth of capacity
    s._rho_cache.clear()
    s._cache.clear()
    assert np.all(s._rho(-1.0)[lower] >= 1.0)
    probes, _ = s._bounded(np.ones(len(space), dtype=bool), space.index(space.baseline()))
    assert not probes[lower].any()


def test_the_lone_sweet_spot_of_the_bench_is_found_at_budget_15_where_near_ties_once_took_its_rounds():
    """`st-lone-p1` seed 0 spent three rounds splitting a 1 % near-tie and ended 1.246 off; with near-ties
    waiting for the floor's full rounds, seeds 0–2 end on the sweet spot at budget 15."""
    scenario = next(s for s in default_scenarios() if s.name == "st-lone-p1")
    for seed in range(3):
        row = run_one(scenario, "edpilot", seed, budget=15).row
        assert row["final_config"] == row["oracle_config"]
        assert row["final_ratio"] == 1.0


def test_a_config_near_capacity_whose_round_is_two_batches_is_served_as_a_bounded_probe():
    """The measured H200 surface at 16 req/s: (1980 MHz, b 20) keeps up at its pessimistic batch time (ρ 0.98–1.00
    at 1 sd) but truly runs at ρ 1.10 — its batch time is above b 24's. Its full round is two batches, a probe's
    length: it is now served as a bounded probe (priced, capped, not after a probe), never as a full round that
    falls behind; on main these four seeds each had one."""
    scenario = next(s for s in default_scenarios() if s.name == "h200-llama-3.2-1b-batch-p16")
    for seed in (1, 6, 7, 9):
        row = run_one(scenario, "edpilot", seed, budget=15).row
        assert row["overloaded_rounds"] == 0
        assert row["final_ratio"] == 1.0
