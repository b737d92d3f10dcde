"""Outside strategies (module:Class, file.py:Class) and the reference peers (Optuna TPE and GP, scikit-optimize)."""

from __future__ import annotations

import json
import math
import sys

import pytest
from typer.testing import CliRunner

from edpilot.backends import open_backends
from edpilot.cli import app
from edpilot.errors import ConfigError
from edpilot.objective import Objective, Observation
from edpilot.search import PEERS, SearchContext, make_strategy, strategy_class
from edpilot.serving import Traffic
from edpilot.space import Config, ConfigSpace
from edpilot.workload import Workload
from tests.conftest import run_tune, write_synthetic_profile
from tests.search.test_strategies import BATCHES, FREQS, OPTIMUM, bowl

pytest.importorskip("optuna")
pytest.importorskip("skopt")

OUTSIDE = '''
from edpilot.search import Strategy
from edpilot.space import Config


class Smallest(Strategy):
    """Proposes the smallest batch at the top clock."""

    def propose(self):
        return Config.of(min(self.space.batch_sizes), gpu_mhz=max(self.space.freqs_mhz))
'''


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


@pytest.mark.parametrize(
    "spec,says",
    [
        ("no-such", "unknown strategy 'no-such'; choose one of: edpilot, baseline, grid, random, camel, optuna-tpe"),
        ("no_such_module_xyz:Thing", "cannot import no_such_module_xyz"),
        ("edpilot.search.grid:Nope", "edpilot.search.grid has no 'Nope'"),
        ("edpilot.space:Config", "Config is not a subclass of edpilot.search.Strategy"),
        ("edpilot.search.grid:", "expected module:Class"),
        ("missing/file.py:Thing", "strategy file missing/file.py does not exist"),
    ],
)
def test_a_bad_strategy_spec_is_one_line(spec, says):
    with pytest.raises(ConfigError) as err:
        strategy_class(spec)
    assert says in str(err.value)
    assert says[:30] in one_line_error(["tune", "--strategy", spec, "--budget", "2"]).replace("\n", " ")


def test_a_file_that_raises_on_import_is_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    out = one_line_error(["tune", "--strategy", f"{bad}:X", "--budget", "2"])
    assert "importing" in out and "RuntimeError: boom" in out


def test_an_outside_strategy_from_a_file_drives_tune(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(OUTSIDE)
    log = tmp_path / "run.jsonl"
    spec = f"{path}:Smallest"
    result = CliRunner().invoke(app, ["tune", "--strategy", spec, "--budget", "3", "--output", str(log), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["strategy"] == spec
    rounds = [(r["freq_mhz"], r["batch_size"]) for r in lines if r["type"] == "round"]
    assert rounds[0] == (930.75, 28) and rounds[1] == (930.75, 4)


def context(space: ConfigSpace, *, budget: int | None = 15, **kw: float) -> SearchContext:
    return SearchContext(
        space=space,
        objective=Objective("edp").bind(None),
        baseline=space.baseline(),
        traffic=Traffic(),
        budget=budget,
        **kw,
    )


def window(edp: float, *, p95_s: float = 1.0, failed: bool = False) -> Observation:
    return Observation(
        requests=4,
        energy_per_request_j=1.0,
        mean_latency_s=edp,
        p95_latency_s=p95_s,
        mean_ttft_s=None,
        power_w=10.0,
        mean_batch_s=0.5,
        energy_per_batch_j=4.0,
        window_s=4.0,
        keeps_up=True,
        failed_requests=4 if failed else 0,
    )


@pytest.mark.parametrize("name", list(PEERS))
def test_a_peer_is_told_the_baseline_as_a_trial_and_sizes_its_start_by_the_budget(name):
    space = ConfigSpace.grid(FREQS, BATCHES)
    s = make_strategy(name, context(space, budget=15))
    assert s.startup_trials == 5 and make_strategy(name, context(space, budget=None)).startup_trials == 10
    s.observe_baseline(window(4.0))
    seen = []
    for k in range(6):
        config = s.propose()
        assert s.propose() == config  # asked once until told
        assert config in space
        seen.append(config)
        s.observe(config, window(4.0 - 0.1 * k, failed=k == 2))
    if name.startswith("optuna"):
        trials = s.study.trials
        assert len(trials) == 7
        assert trials[0].params == {"freq": len(FREQS) - 1, "batch": len(BATCHES) - 1} and trials[0].value == 0.0
        assert trials[3].state.name == "FAIL"
        assert trials[2].value == pytest.approx(math.log(3.9 / 4.0))
    else:
        assert len(s.optimizer.Xi) == 7 and s.optimizer.Xi[0] == [len(FREQS) - 1, len(BATCHES) - 1]
        assert s.optimizer.yi[0] == 0.0
    s.set_traffic(Traffic(rate_per_s=1.2))  # a refined estimate of the same traffic keeps the study
    assert len(s.arms) >= 2
    s.set_traffic(Traffic(rate_per_s=4.0))
    assert not s.arms and s.best() == space.baseline()


def test_optuna_peers_store_the_constraints_with_each_trial():
    space = ConfigSpace.grid(FREQS, BATCHES)
    s = make_strategy("optuna-tpe", context(space, slo_p95_s=2.0))
    s.observe_baseline(window(4.0, p95_s=3.0))
    config = s.propose()
    s.observe(config, window(3.0, p95_s=1.0))
    assert s.study.trials[0].constraints == {"c0": pytest.approx(0.5)}
    assert s.study.trials[1].constraints == {"c0": pytest.approx(-0.5)}


@pytest.mark.parametrize("name", list(PEERS))
def test_a_peer_finds_the_bowl_optimum_with_a_generous_budget(tmp_path, name):
    profile = write_synthetic_profile(tmp_path / "bowl.csv", bowl, freqs_mhz=FREQS, batch_sizes=BATCHES)
    backends = open_backends(device="sim", profile=str(profile), seed=0)
    result = run_tune(
        backends,
        strategy=name,
        budget=30,
        workload=Workload(arrivals="saturated"),
        requests_per_round=16,
        energy_scope="active",
        seed=0,
    )
    assert result.best.config == OPTIMUM


def test_a_peer_without_its_library_says_to_install_the_extra(monkeypatch):
    for module in [m for m in sys.modules if m.startswith("edpilot.search.peers.optuna") or m == "optuna"]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError) as err:
        strategy_class("optuna-tpe")
    assert str(err.value).startswith("strategy 'optuna-tpe' needs the peers extra: pip install 'edpilot[peers]'")
    assert "optuna" in one_line_error(["tune", "--strategy", "optuna-gp", "--budget", "2"])


def test_config_points_round_trip():
    space = ConfigSpace.grid(FREQS, BATCHES)
    s = make_strategy("skopt", context(space))
    assert all(s.config(s.point(c)) == c for c in space)
    assert s.point(Config.of(BATCHES[2], gpu_mhz=FREQS[1])) == (1, 2)


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--strategy", "no_such_module_xyz:Thing"],
        ["bench", "--strategy", "no_such_module_xyz:Thing"],
        ["bench", "--sweep", "--strategies", "edpilot,no_such_module_xyz:Thing"],
    ],
)
def test_serve_and_bench_refuse_a_bad_outside_strategy_in_one_line(args):
    assert "cannot import no_such_module_xyz" in one_line_error(args)


def test_bench_times_an_outside_strategy(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(OUTSIDE)
    result = CliRunner().invoke(
        app, ["bench", "--strategy", f"{path}:Smallest", "--rounds", "5", "--repeats", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rounds"] == 5
