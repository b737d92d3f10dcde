"""The session's last word: unmet constraints are said, and a choice worse than the baseline is not made."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from edpilot.choice import Constraints, choose
from edpilot.cli import app
from edpilot.objective import Objective, Observation
from edpilot.records import Summary
from edpilot.search import Strategy
from edpilot.serving import Traffic
from edpilot.space import Config, ConfigSpace
from edpilot.stats import ConfigStats
from edpilot.tuner import SessionSettings, TuningSession

BASE = Config.of(8, gpu_mhz=900.0)
FAST = Config.of(2, gpu_mhz=900.0)
SLOW = Config.of(2, gpu_mhz=300.0)


def obs(*, edp: float, p95_s: float = 1.0, power_w: float = 10.0, keeps_up: bool = True) -> Observation:
    """A window whose EDP is `edp` (energy 1 J per request, so mean latency = edp)."""
    return Observation(
        requests=8,
        energy_per_request_j=1.0,
        mean_latency_s=edp,
        p95_latency_s=p95_s,
        mean_ttft_s=None,
        power_w=power_w,
        mean_batch_s=0.5,
        energy_per_batch_j=4.0,
        window_s=8.0,
        keeps_up=keeps_up,
    )


def stats_of(**windows: list[Observation]) -> dict[Config, ConfigStats]:
    configs = {"base": BASE, "fast": FAST, "slow": SLOW}
    out = {}
    for name, observed in windows.items():
        s = ConfigStats(configs[name])
        for o in observed:
            s.add(o, o.edp)
        out[configs[name]] = s
    return out


def test_unmet_slo_chooses_the_nearest_and_says_the_closest_value():
    stats = stats_of(base=[obs(edp=5.0, p95_s=12.1)], fast=[obs(edp=2.0, p95_s=4.0)], slow=[obs(edp=3.0, p95_s=6.0)])
    choice = choose(SLOW, stats, baseline=BASE, constraints=Constraints(slo_p95_s=3.0))
    assert choice.config == FAST and choice.search_choice == SLOW
    assert choice.constraints_met == {"slo_p95_s": False}
    assert len(choice.warnings) == 1
    assert choice.warnings[0].startswith("--slo-p95 3 s cannot be met: the lowest p95 latency measured is 4 s")


def test_a_config_that_meets_the_constraint_wins_over_a_cheaper_one_that_breaks_it():
    stats = stats_of(
        base=[obs(edp=5.0, power_w=7.0)], fast=[obs(edp=2.0, power_w=9.5)], slow=[obs(edp=3.0, power_w=7.5)]
    )
    choice = choose(FAST, stats, baseline=BASE, constraints=Constraints(power_cap_w=8.0))
    assert choice.config == SLOW and choice.constraints_met == {"power_cap_w": True} and choice.warnings == ()


def test_a_choice_measured_worse_than_the_baseline_keeps_the_baseline():
    stats = stats_of(base=[obs(edp=2.0), obs(edp=2.2)], fast=[obs(edp=2.3)])
    choice = choose(FAST, stats, baseline=BASE, constraints=Constraints())
    assert choice.config == BASE and choice.baseline_kept
    assert "measured 15.0 % worse than the baseline" in choice.warnings[0]  # lowest windows: 2.3 against 2.0
    assert "keeping the baseline" in choice.warnings[0]


def test_a_window_that_inherited_a_backlog_does_not_make_the_baseline_win():
    # ho-spike-u2: the optimum's second window inherited the queue a 3x-slow config left (7.0 here); by the mean
    # of its windows (4.5) it lost to a baseline 2.3x worse than its clean window
    stats = stats_of(base=[obs(edp=4.5 * 0.9)], fast=[obs(edp=2.0), obs(edp=7.0)])
    choice = choose(FAST, stats, baseline=BASE, constraints=Constraints())
    assert choice.config == FAST and not choice.baseline_kept and choice.warnings == ()


def test_only_windows_that_began_without_a_backlog_are_compared_with_the_baseline():
    # syn-throttle seed 2: both windows of the optimum began behind the 30-odd requests a probe left, and cost
    # more than the baseline's window, which began with an empty queue
    stats = stats_of(base=[obs(edp=2.1)], fast=[obs(edp=2.3), obs(edp=2.4)])
    behind = {BASE: [0], FAST: [34, 36]}
    choice = choose(FAST, stats, baseline=BASE, constraints=Constraints(), inherited=behind)
    assert choice.config == FAST and not choice.baseline_kept and choice.warnings == ()
    # a clean window is still judged: here it is worse than the baseline's, and the baseline is kept
    clean = {BASE: [0], FAST: [34, 1]}
    kept = choose(FAST, stats, baseline=BASE, constraints=Constraints(), inherited=clean)
    assert kept.config == BASE and kept.baseline_kept
    assert "measured 14.3 % worse than the baseline" in kept.warnings[0]  # the clean window, 2.4 against 2.1
    # unknown (None) counts as clean, as without `inherited`
    unknown = choose(
        FAST, stats, baseline=BASE, constraints=Constraints(), inherited={BASE: [None], FAST: [None, None]}
    )
    assert unknown.config == BASE


def test_the_session_tells_the_choice_what_each_window_inherited():
    def window(edp: float, backlog: int) -> Observation:
        return dataclasses.replace(obs(edp=edp), backlog_requests=backlog)

    session = session_with([(BASE, window(2.1, 30)), (FAST, window(2.3, 4)), (FAST, window(2.2, 0))])
    assert session._inherited() == {BASE: [None], FAST: [30, 4]}
    # both of the choice's windows began with more than its batch (2) queued: not judged against the baseline
    assert session.best() == FAST
    # the same window after an empty queue is judged, and loses to the baseline's
    assert session_with([(BASE, window(2.1, 0)), (FAST, window(2.3, 0))]).best() == BASE


def test_the_baseline_is_not_kept_when_it_breaks_a_constraint_the_choice_meets():
    stats = stats_of(base=[obs(edp=2.0, p95_s=9.0)], fast=[obs(edp=2.5, p95_s=2.0)])
    choice = choose(FAST, stats, baseline=BASE, constraints=Constraints(slo_p95_s=3.0))
    assert choice.config == FAST and not choice.baseline_kept and choice.constraints_met == {"slo_p95_s": True}


def test_the_baseline_is_not_kept_when_it_falls_behind_and_the_choice_keeps_up():
    stats = stats_of(base=[obs(edp=2.0, keeps_up=False)], fast=[obs(edp=2.5)])
    assert choose(FAST, stats, baseline=BASE, constraints=Constraints()).config == FAST


class FastFirst(Strategy):
    """An outside strategy that always proposes and chooses (900 MHz, b 2), whatever it measured."""

    def propose(self) -> Config:
        return FAST

    def best(self) -> Config:
        return FAST


def session_with(windows: list[tuple[Config, Observation]], **limits: float) -> TuningSession:
    settings = SessionSettings(
        space=ConfigSpace.grid((300.0, 900.0), (2, 8)),
        objective=Objective("edp"),
        strategy="tests.test_choice:FastFirst",
        baseline=BASE,
        **limits,
    )
    session = TuningSession(settings, Traffic())
    for config, o in windows:
        session.record(config, o)
    return session


def test_summary_carries_constraints_met_and_the_kept_baseline_and_reads_back():
    session = session_with([(BASE, obs(edp=2.0, p95_s=12.1)), (FAST, obs(edp=2.4, p95_s=4.0))], slo_p95_s=3.0)
    result = session.finish()
    s = result.summary
    assert s.best_config == FAST and s.constraints_met == {"slo_p95_s": False} and not s.baseline_kept
    record = json.loads(json.dumps(s.to_dict()))
    assert record["constraints_met"] == {"slo_p95_s": False}
    again = Summary.from_dict(record, where="run.jsonl:3")
    assert again.constraints_met == {"slo_p95_s": False} and again.warnings == s.warnings
    assert result.limits == {"slo_p95_s": 3.0}

    kept = session_with([(BASE, obs(edp=2.0)), (FAST, obs(edp=2.4))]).finish().summary
    assert kept.best_config == BASE and kept.baseline_kept and kept.search_choice["batch_size"] == 2
    assert kept.to_dict()["cost_gain_pct"] == 0.0


def test_old_summaries_without_the_new_fields_still_read():
    record = session_with([(BASE, obs(edp=2.0))]).finish().summary.to_dict()
    for key in ("constraints_met", "baseline_kept", "search_choice", "warnings"):
        del record[key]
    s = Summary.from_dict(record, where="old.jsonl:2")
    assert s.constraints_met == {} and s.baseline_kept is False


def test_a_summary_with_a_bad_constraints_met_is_refused():
    record = session_with([(BASE, obs(edp=2.0))]).finish().summary.to_dict()
    record["constraints_met"] = {"slo_p95_s": "yes"}
    with pytest.raises(Exception, match="slo_p95_s"):
        Summary.from_dict(record, where="bad.jsonl:2")


def test_tune_says_an_slo_that_cannot_be_met_and_json_carries_it():
    result = CliRunner().invoke(app, ["tune", "--slo-p95", "1", "--budget", "6", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    warning = [line for line in lines if line.startswith("warning: --slo-p95 1 s cannot be met")]
    assert len(warning) == 1
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["constraints_met"] == {"slo_p95_s": False}
    assert summary["best"]["p95_latency_s"] > 1.0
    closest = float(warning[0].split("measured is ")[1].split(" s")[0])
    assert closest == pytest.approx(summary["best"]["p95_latency_s"], rel=1e-2)
