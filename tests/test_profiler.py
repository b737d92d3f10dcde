"""`edpilot profile`: samples per config, atomic partial tables, resume, replay."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edpilot.backends import build_space, open_backends
from edpilot.cli import app
from edpilot.errors import ConfigError, ProfileError
from edpilot.profiler import config_stats, profile
from edpilot.sim import read_profile
from edpilot.space import Config
from edpilot.workload import Workload

runner = CliRunner()


class CountingEngine:
    name = "counting"

    def __init__(self, inner, fail_after=None):
        self.inner, self.calls, self.fail_after = inner, 0, fail_after

    def generate(self, batch):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        return self.inner.generate(batch)

    def describe(self):
        return {}


def run_profile(tmp_path, engine_wrapper=None, resume=False, repeats=3):
    b = open_backends(device="sim")
    engine = engine_wrapper(b.engine) if engine_wrapper else b.engine
    space = build_space(b, freqs="408,930.75", batches="1,4")
    rows = profile(
        device=b.device,
        engine=engine,
        space=space,
        repeats=repeats,
        workload=Workload(arrivals="saturated", output_tokens=32),
        output=tmp_path / "p.csv",
        metadata={"device": "sim", "model": "llama-3.2-1b", "output_tokens": 32},
        resume=resume,
    )
    return rows, engine


def test_profile_measures_every_config_n_times(tmp_path):
    rows, _ = run_profile(tmp_path)
    table = read_profile(tmp_path / "p.csv")
    assert table.configs == [Config.of(b, gpu_mhz=f) for f in (408.0, 930.75) for b in (1, 4)]
    assert all(len(table.samples(c)) == 3 for c in table.configs)
    assert float(table.metadata["idle_power_w"]) == pytest.approx(8.45, abs=0.05)  # the sim's idle at 930.75 MHz
    stats = config_stats(rows, 32)
    slow, fast = stats[0], stats[2]
    assert slow.mean_latency_s > fast.mean_latency_s  # lower clock, slower batch
    assert stats[1].tokens_per_s > 3 * stats[0].tokens_per_s  # batching raises throughput


def test_interrupted_profile_resumes_without_repeating(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_profile(tmp_path, lambda e: CountingEngine(e, fail_after=9))  # 2 configs done (4 batches each)
    assert len(read_profile(tmp_path / "p.csv").rows) == 6
    with pytest.raises(ConfigError, match="--resume"):
        run_profile(tmp_path)
    rows, engine = run_profile(tmp_path, CountingEngine, resume=True)
    assert len(rows) == 12 and engine.calls == 2 * 4  # only the two missing configs, warm-up included


def test_resume_refuses_another_model(tmp_path):
    run_profile(tmp_path, repeats=1)
    b = open_backends(device="sim")
    with pytest.raises(ProfileError, match="measured with model"):
        profile(
            device=b.device,
            engine=b.engine,
            space=build_space(b, freqs="408", batches="1"),
            repeats=1,
            workload=Workload(arrivals="saturated"),
            output=tmp_path / "p.csv",
            metadata={"device": "sim", "model": "qwen2.5-3b", "output_tokens": 32},
            resume=True,
        )


def test_profile_cli_then_tune_replays_it(tmp_path):
    out = tmp_path / "prof.csv"
    r = runner.invoke(
        app,
        [
            "profile",
            "--output",
            str(out),
            "--freqs",
            "306,930.75",
            "--batches",
            "2,8",
            "--repeats",
            "2",
            "--output-tokens",
            "32",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout)
    assert len(stats) == 4 and all(s["samples"] == 2 for s in stats)
    r = runner.invoke(app, ["tune", "--profile", str(out), "--strategy", "grid", "--budget", "4", "--json"])
    assert r.exit_code == 0, r.output
    baseline = json.loads(r.stdout)["baseline"]
    assert (baseline["freq_mhz"], baseline["batch_size"]) == (930.75, 8)


def test_cpu_device_runs_real_engines_but_needs_latency_objective(tmp_path):
    pytest.importorskip("transformers")
    args = [
        "tune",
        "--device",
        "cpu",
        "--engine",
        "hf:tiny",
        "--torch-device",
        "cpu",
        "--arrivals",
        "saturated",
        "--batches",
        "1,2",
        "--output-tokens",
        "4",
        "--requests-per-round",
        "4",
        "--strategy",
        "grid",
        "--budget",
        "2",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "needs an energy meter" in r.stderr and "--objective latency" in r.stderr
    r = runner.invoke(app, [*args, "--objective", "latency", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["best"]["edp"] is None
    r = runner.invoke(app, ["profile", "--device", "cpu", "--engine", "hf:tiny", "--output", str(tmp_path / "x.csv")])
    assert r.exit_code == 2 and "needs an energy meter" in r.stderr


def test_profile_over_the_memory_clock_writes_a_column_per_knob_and_replays(tmp_path):
    b = open_backends(device="sim")
    space = build_space(b, freqs="930.75", emcs="204,3199", batches="4")
    rows = profile(
        device=b.device,
        engine=b.engine,
        space=space,
        repeats=2,
        workload=Workload(arrivals="saturated", output_tokens=32),
        output=tmp_path / "p.csv",
        metadata={"device": "sim", "model": "llama-3.2-1b", "output_tokens": 32},
    )
    assert [r.knobs for r in rows] == [(("emc_mhz", 204.0),)] * 2 + [(("emc_mhz", 3199.0),)] * 2
    assert (tmp_path / "p.csv").read_text().splitlines()[-5] == "freq_mhz,emc_mhz,batch_size,latency_s,energy_j"
    table = read_profile(tmp_path / "p.csv")
    slow, fast = (table.samples(Config.of(4, gpu_mhz=930.75, emc_mhz=e)).mean(axis=0)[0] for e in (204.0, 3199.0))
    assert slow > 1.5 * fast  # decode is bandwidth-bound: the 204 MHz memory clock starves it
    replay = open_backends(device="sim", profile=str(tmp_path / "p.csv"))
    assert build_space(replay, emcs="all").axis("emc_mhz").levels == (204.0, 3199.0)
