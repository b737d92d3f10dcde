"""Warm start from a twin board's run log (`--prior`): where the first proposals land, what is refused, and that a
prior that is wrong for this board does not keep the search from this board's best."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edpilot.backends import build_space, open_backends
from edpilot.bench.oracle import true_hardware, truth_at
from edpilot.cli import app
from edpilot.errors import ConfigError
from edpilot.objective import parse_objective
from edpilot.records import RunHeader
from edpilot.runlog import read_run_log
from edpilot.search.hardware import IdlePower, LogResponse, features
from edpilot.search.hardware import prior as weight_prior
from edpilot.search.prior import HardwarePrior, PriorWindow, mismatches, read_prior, warm_start
from edpilot.space import Config, ConfigSpace
from edpilot.tuner_api import Tuner
from edpilot.workload import Workload

runner = CliRunner()

FREQS = (300.0, 500.0, 700.0, 900.0, 1100.0, 1300.0)
BATCHES = (1, 2, 4, 8, 16)
SWEET = (500.0, 4)
TRAFFIC = ["--arrivals", "poisson", "--arrival-rate", "1", "--prompt-tokens", "100", "--output-tokens", "70"]


def smooth(f: float, b: int) -> tuple[float, float]:
    """Batch time (s) and energy (J): a memory part plus a compute part ∝ b/f, power rising with f²."""
    time_s = 0.6 * (1 + 0.06 * b) + 0.5 * (1 + 0.15 * b) * (900.0 / f)
    return time_s, time_s * (9.0 + 14.0 * (f / 1300.0) ** 2)


def lone(f: float, b: int) -> tuple[float, float]:
    """The smooth surface with one config 0.6× in time and energy, which no neighbour hints at."""
    t, e = smooth(f, b)
    return (0.6 * t, 0.6 * e) if (f, b) == SWEET else (t, e)


def write_board(path: Path, surface, *, factors: dict[tuple[float, int], float] | None = None, seed: int = 0) -> Path:
    """A profile table of `surface` (× a factor per config, in time and energy), 4 samples of 1 % noise each."""
    rng = np.random.default_rng(seed)
    lines = ["# device: twin", "# idle_power_w: 7.0", "freq_mhz,batch_size,latency_s,energy_j"]
    for f in FREQS:
        for b in BATCHES:
            t, e = surface(f, b)
            k = (factors or {}).get((f, b), 1.0)
            for _ in range(4):
                n = float(np.exp(rng.normal(0.0, 0.01)))
                lines.append(f"{f},{b},{t * k * n:.6f},{e * k * n:.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def twin_factors(seed: int) -> dict[tuple[float, int], float]:
    """Board B against board A: each config × lognormal(5 %), independently."""
    rng = np.random.default_rng(seed)
    return {(f, b): float(np.exp(rng.normal(0.0, 0.05))) for f in FREQS for b in BATCHES}


def tune(*args: str) -> dict:
    r = runner.invoke(app, ["tune", "--device", "sim", *TRAFFIC, "--json", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def mapped_run(tmp_path: Path, board: Path) -> Path:
    """Board A's run log: a grid run that measured every config once."""
    log = tmp_path / "a.jsonl"
    tune(
        "--profile",
        str(board),
        "--strategy",
        "grid",
        "--budget",
        str(len(FREQS) * len(BATCHES) - 1),
        "--output",
        str(log),
    )
    return log


def searched(log: Path) -> list[Config]:
    return [r.config for r in read_run_log(log).rounds]


def oracle_config(board: Path) -> Config:
    """This board's steady-state best at the tests' traffic (EDP, total energy), from its profile's means."""
    backends = open_backends(device="sim", profile=str(board))
    space = build_space(backends)
    hw = true_hardware(backends, space, prompt_tokens=100, output_tokens=70)
    traffic = Workload(arrivals="poisson", rate_per_s=1.0, output_tokens=70, prompt_tokens=100).traffic(32)
    truth = truth_at(
        hw, space, traffic, objective=parse_objective("edp"), energy_scope="total", baseline=space.baseline()
    )
    return truth.oracle_config


@pytest.fixture
def twins(tmp_path: Path) -> tuple[Path, Path]:
    """Board A's run log (the lone sweet spot measured) and board B's profile (A ± 5 % per config)."""
    a = mapped_run(tmp_path, write_board(tmp_path / "a.csv", lone))
    b = write_board(tmp_path / "b.csv", lone, factors=twin_factors(1), seed=1)
    return a, b


def test_a_twins_prior_sends_the_first_proposal_to_the_twins_best(tmp_path, twins):
    a, b = twins
    assert oracle_config(b) == Config.of(SWEET[1], gpu_mhz=SWEET[0])  # ±5 % does not move a 0.6× sweet spot
    warm, cold = tmp_path / "warm.jsonl", tmp_path / "cold.jsonl"
    tune("--profile", str(b), "--budget", "2", "--prior", str(a), "--output", str(warm))
    tune("--profile", str(b), "--budget", "2", "--output", str(cold))
    assert searched(warm)[1] == Config.of(SWEET[1], gpu_mhz=SWEET[0])  # round 1, right after the baseline
    assert Config.of(SWEET[1], gpu_mhz=SWEET[0]) not in searched(cold)  # nothing hints at it without the prior
    header = read_run_log(warm).header
    assert header is not None and header.extra["prior"]["windows"] == 30
    assert header.extra["prior"]["configs"] == 30 and header.extra["prior"]["ignored_windows"] == 0


def test_a_prior_that_is_wrong_at_the_best_config_still_ends_at_this_boards_best(tmp_path):
    a = mapped_run(tmp_path, write_board(tmp_path / "a.csv", smooth))
    planted = oracle_config(tmp_path / "a.csv")
    b = write_board(tmp_path / "b.csv", smooth, factors={(planted.freq_mhz, planted.batch_size): 1.2}, seed=2)
    best_b = oracle_config(b)
    assert best_b != planted  # 20 % worse in time and energy: the twin's best is not this board's
    warm = tmp_path / "warm.jsonl"
    summary = tune("--profile", str(b), "--budget", "15", "--prior", str(a), "--output", str(warm))
    assert searched(warm)[1] == planted  # the prior is believed first...
    assert Config.of(summary["best"]["batch_size"], gpu_mhz=summary["best"]["freq_mhz"]) == best_b  # ...and overruled


def test_configs_outside_this_grid_are_ignored_and_counted(tmp_path, twins):
    a, b = twins
    warm = tmp_path / "warm.jsonl"
    tune("--profile", str(b), "--budget", "1", "--batches", "2,4,8", "--prior", str(a), "--output", str(warm))
    header = read_run_log(warm).header
    assert header is not None
    outside = sum(r.config.batch_size not in (2, 4, 8) for r in read_run_log(a).rounds)
    assert outside == 12  # batches 1 and 16 at six levels
    assert header.extra["prior"]["ignored_windows"] == outside and header.extra["prior"]["windows"] == 30 - outside


def test_other_strategies_ignore_the_prior(tmp_path, twins):
    a, b = twins
    runs = []
    for name, extra in (("plain", []), ("warm", ["--prior", str(a)])):
        log = tmp_path / f"{name}.jsonl"
        tune("--profile", str(b), "--strategy", "random", "--budget", "6", "--output", str(log), *extra)
        runs.append(searched(log))
    assert runs[0] == runs[1] and len(set(runs[0])) > 3


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edpilot", *args], capture_output=True, text=True, timeout=120)


def test_a_foreign_prior_is_refused_in_one_line_by_the_real_cli(tmp_path):
    a = tmp_path / "a.jsonl"
    assert runner.invoke(app, ["tune", "--budget", "2", "--output", str(a)]).exit_code == 0  # llama, 32GB Orin
    p = _cli("tune", "--model", "qwen2.5-3b", "--prior", str(a))
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"edpilot: error: --prior {a} is not a run of this setting: model llama-3.2-1b there, qwen2.5-3b here"
    ]
    p = _cli("tune", "--device", "sim:orin-agx-64gb", "--output-tokens", "128", "--prior", str(a))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "device board orin-agx-32gb there, orin-agx-64gb here" in p.stderr
    assert "output tokens 70 there, 128 here" in p.stderr
    p = _cli("serve", "--model", "qwen2.5-3b", "--port", "0", "--prior", str(a))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "qwen2.5-3b here" in p.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ("not json\n{}\n", "not a JSON object"),
        ('{"type": "round"}\n', "round record"),
    ],
)
def test_a_missing_or_broken_prior_is_refused_in_one_line(tmp_path, content, says):
    path = tmp_path / "prior.jsonl"
    if content is not None:
        path.write_text(content)
    p = _cli("tune", "--prior", str(path))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edpilot: error: --prior") and says in lines[0]


def test_a_run_log_without_header_or_without_any_measured_window_is_refused(tmp_path):
    a = tmp_path / "a.jsonl"
    tune("--budget", "1", "--output", str(a))
    lines = a.read_text().splitlines()
    headless = tmp_path / "headless.jsonl"
    headless.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(ConfigError, match="no run header"):
        read_prior(headless)
    failed = tmp_path / "failed.jsonl"
    rounds = [json.loads(x) for x in lines if json.loads(x)["type"] == "round"]
    for r in rounds:
        r.update(failed_requests=r["requests"], cost=None)
    failed.write_text("\n".join([lines[0], *map(json.dumps, rounds)]) + "\n")
    with pytest.raises(ConfigError, match="every one of its 2 windows failed"):
        read_prior(failed)


def _header(**changes: object) -> RunHeader:
    d: dict = {
        "version": "0",
        "device": {"backend": "jetson", "name": "jetson:17000000.gpu", "total_rails": ["VDD_GPU_SOC", "VDD_CPU_CV"]},
        "engine": {"backend": "llamacpp", "model": "llama-3.2-1b.gguf", "quantisation": "Q5_K_M"},
        "model": "llama-3.2-1b.gguf",
        "arrivals": "poisson",
        "arrival_rate_per_s": 1.0,
        "output_tokens": 70.0,
        "objective": "edp",
        "energy_scope": "total",
        "strategy": "edpilot",
        "budget": 15,
        "seed": 0,
        "freqs_mhz": [306.0, 930.75],
        "batch_sizes": [4, 8],
        "baseline": {"freq_mhz": 930.75, "batch_size": 8},
        "mode": "tune",
        "extra": {"batching": "static", "prompt_tokens": 100.0},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            d[section] = {**d[section], field: value}
        else:
            d[section] = value
    return RunHeader.from_dict(d, where="test")


def test_what_must_match_and_what_may_differ():
    base = _header()
    # traffic, objective, strategy and grid may differ: they are not the hardware's answer
    assert (
        mismatches(base, _header(arrival_rate_per_s=8.0, objective="ed2p", batch_sizes=[4], arrivals="uniform")) == []
    )
    assert mismatches(base, _header(output_tokens=75.0, extra__prompt_tokens=95.0)) == []  # within 10 %
    assert mismatches(base, _header(engine__quantisation="Q8_0")) == ["engine quantisation Q5_K_M there, Q8_0 here"]
    assert mismatches(base, _header(device__total_rails=["VDD_GPU_SOC"])) == [
        "device total_rails ['VDD_GPU_SOC', 'VDD_CPU_CV'] there, ['VDD_GPU_SOC'] here"
    ]
    assert mismatches(base, _header(extra__batching="continuous")) == ["batching static there, continuous here"]
    assert mismatches(base, _header(extra__prompt_tokens=128.0)) == ["prompt tokens 100 there, 128 here"]
    gpu = {"backend": "nvml", "gpu": "NVIDIA H200"}
    assert mismatches(_header(device={**gpu, "name": "nvml:0"}), _header(device={**gpu, "name": "nvml:3"})) == []
    library = _header(engine={"backend": "library"})  # the Tuner's caller runs the engine: only the model is compared
    assert mismatches(base, library) == []


def test_the_library_tuner_takes_a_prior_of_the_model_it_names(tmp_path, twins):
    a, b = twins
    device = open_backends(device="sim", profile=str(b)).device
    tuner = Tuner(device, arrival_rate_per_s=1.0, prompt_tokens=100, model="llama-3.2-1b", prior=a)
    prior = tuner.session.settings.prior
    assert prior is not None and len(prior.windows) == 30
    with pytest.raises(ConfigError, match="model llama-3.2-1b there, qwen2.5-3b here"):
        Tuner(device, arrival_rate_per_s=1.0, prompt_tokens=100, model="qwen2.5-3b", prior=a)


def _warm_model(space: ConfigSpace, windows: list[PriorWindow]) -> LogResponse:
    """The batch-time model the edpilot strategy builds, warm-started from `windows`."""
    from edpilot.search.edpilot import ENERGY_SLOPES, TIME_SLOPES

    phi = features(space)
    time, _ = warm_start(
        HardwarePrior("a.jsonl", _header(), tuple(windows)),
        space,
        time=LogResponse(phi, *weight_prior(space, **TIME_SLOPES)),
        energy=LogResponse(phi, *weight_prior(space, **ENERGY_SLOPES)),
        idle=IdlePower(np.array([c.freq_mhz for c in space.configs]), None),
    )
    return time


def test_the_prior_centres_the_model_and_this_boards_windows_override_it():
    space = ConfigSpace.grid((300.0, 600.0, 900.0), (1, 4, 16))
    a_time = {c: smooth(c.freq_mhz, c.batch_size)[0] for c in space.configs}  # type: ignore[arg-type]
    measured = [c for c in space.configs if c != Config.of(4, gpu_mhz=600.0)]
    model = _warm_model(space, [PriorWindow(c, 8, a_time[c], None, None, None) for c in measured])
    log_a = np.log([a_time[c] for c in space.configs])
    i, hole = space.index(Config.of(16, gpu_mhz=900.0)), space.index(Config.of(4, gpu_mhz=600.0))
    # before this board served anything: the twin's values, ± a board's shift and spread, wider where it skipped
    assert abs(model.mean[i] - log_a[i]) < 0.005
    assert 0.11 < model.sd[i] < 0.16 and model.sd[hole] > model.sd[i]  # board shift ⊕ spread ⊕ tilt
    assert abs(model.mean[hole] - log_a[hole]) < 0.1  # the twin's smooth fit fills the config it skipped
    # one window of 8 batches here, 20 % slower than the twin there: this board's own window wins
    model.add(i, 1.2 * a_time[Config.of(16, gpu_mhz=900.0)], 8)
    model.fit()
    assert abs(model.mean[i] - (log_a[i] + np.log(1.2))) < 0.03
    # the whole board 30 % slower: a shift the prior allows, learned from a few windows, moves the rest
    for c in (Config.of(1, gpu_mhz=300.0), Config.of(16, gpu_mhz=600.0), Config.of(16, gpu_mhz=300.0)):
        model.add(space.index(c), 1.3 * a_time[c], 8)
    model.fit()
    j = space.index(Config.of(1, gpu_mhz=900.0))  # not served here
    assert model.mean[j] - log_a[j] > 0.2


def test_the_twins_idle_power_seeds_this_boards_and_weighs_as_one_window_per_level():
    space = ConfigSpace.grid((300.0, 900.0), (4, 8))
    windows = [
        PriorWindow(Config.of(4, gpu_mhz=300.0), 4, 1.0, 20.0, idle_j=60.0, idle_s=10.0),  # 6 W idle at 300 MHz
        PriorWindow(Config.of(8, gpu_mhz=300.0), 4, 1.5, 30.0, idle_j=120.0, idle_s=20.0),  # 6 W again
        PriorWindow(Config.of(4, gpu_mhz=900.0), 4, 0.5, 25.0, idle_j=100.0, idle_s=10.0),  # 10 W at 900 MHz
    ]
    idle = IdlePower(np.array([c.freq_mhz for c in space.configs]), None)
    phi = features(space)
    warm_start(
        HardwarePrior("a.jsonl", _header(), tuple(windows)),
        space,
        time=LogResponse(phi, *weight_prior(space, slope_b=0.5, slope_f=-0.5, slope_sd=0.25)),
        energy=LogResponse(phi, *weight_prior(space, slope_b=0.5, slope_f=0.0, slope_sd=0.5)),
        idle=idle,
    )
    np.testing.assert_allclose(idle.predict(), [6.0, 6.0, 10.0, 10.0])
    idle.add(900.0, idle_j=120.0, idle_s=10.0)  # this board's own window at 900 MHz: 12 W over as long
    assert idle.predict()[2] == pytest.approx(11.0)  # the twin's level (two windows' mean) counts as one window
