"""`edpilot.Tuner`: ask/tell from one's own loop is the same session `edpilot tune` drives."""

from __future__ import annotations

import numpy as np
import pytest

import edpilot
from edpilot.backends import Backends
from edpilot.runlog import read_run_log
from edpilot.runner import Runner
from edpilot.space import Config
from edpilot.workload import Workload
from tests.conftest import run_tune


def test_told_the_same_windows_it_asks_and_chooses_as_tune_does(linear_platform):
    device, engine, _, _ = linear_platform()
    workload = Workload(arrivals="poisson", rate_per_s=2.0)
    replayed = run_tune(Backends(device, engine), strategy="edpilot", budget=8, workload=workload)

    fresh, *_ = linear_platform()
    tuner = edpilot.Tuner(fresh, workload=workload)
    assert tuner.traffic == workload.traffic(32)
    for r in replayed.rounds:
        config = tuner.next_config()
        assert config == r.config
        assert tuner.record(config, r.obs).cost == pytest.approx(r.cost)
    assert tuner.best() == replayed.best.config
    result = tuner.finish()
    assert result.summary.to_dict()["edp_best"] == pytest.approx(replayed.summary.to_dict()["edp_best"])


def test_a_round_served_batch_by_batch_measures_what_the_runner_measures(linear_platform):
    config = Config.of(4, gpu_mhz=1000.0)
    ref_device, ref_engine, *_ = linear_platform()
    expected = Runner(device=ref_device, engine=ref_engine, workload=Workload(arrivals="saturated")).measure(config)

    device, engine, clock, _ = linear_platform()
    tuner = edpilot.Tuner(device, arrival_rate_per_s=1.0, arrivals="saturated", baseline=config)
    assert tuner.next_config() == config
    with tuner.round(config) as rnd:
        start_s = clock.now_s()
        requests = [r.at(start_s) for r in Workload(arrivals="saturated").requests(32, np.random.default_rng(0))]
        for i in range(0, len(requests), config.batch_size):
            completions = rnd.run(engine, requests[i : i + config.batch_size])
            assert len(completions) == config.batch_size
        assert rnd.full
    assert rnd.observation == expected
    assert rnd.record is not None and rnd.record.round == 0 and rnd.record.role == "baseline"


def test_batches_from_ones_own_engine(linear_platform):
    device, _, clock, model = linear_platform(idle_w=5.0)
    tuner = edpilot.Tuner(
        device, arrival_rate_per_s=1.0, batches=[2, 4], freqs=[500, 1000], baseline=Config.of(2, gpu_mhz=500.0)
    )
    assert tuner.space.batch_sizes == (2, 4) and tuner.space.freqs_mhz == (500.0, 1000.0)
    config = tuner.next_config()
    with tuner.round(config) as rnd:
        t0 = clock.now_s()
        arrivals = [edpilot.Request(i, t0 + i, "p", 4, 8) for i in range(4)]
        clock.sleep_until(t0 + 1)
        rnd.add_batch(arrivals[:2], start_s=t0 + 1, end_s=t0 + 1.5, energy_j=2.0)
        clock.sleep_until(t0 + 3.5)
        rnd.add_batch(arrivals[2:], start_s=t0 + 3, end_s=t0 + 3.5, energy_j=2.0)
    obs = rnd.observation
    assert obs.requests == 4
    assert obs.mean_latency_s == pytest.approx((1.5 + 0.5 + 1.5 + 0.5) / 4)
    assert obs.mean_batch_s == pytest.approx(0.5) and obs.energy_per_batch_j == pytest.approx(2.0)
    assert obs.energy_per_request_j == pytest.approx(5.0 * 3.5 / 4)  # `total` scope: the device's idle 5 W
    assert rnd.record.cost == pytest.approx(obs.energy_per_request_j * obs.mean_latency_s)


def test_the_arrival_rate_is_given_once_and_changed_in_one_place(linear_platform, tmp_path):
    device, *_ = linear_platform()
    log = tmp_path / "run.jsonl"
    with edpilot.Tuner(device, arrival_rate_per_s=2.0, run_log=log) as tuner:
        assert tuner.traffic.rate_per_s == 2.0
        config = tuner.next_config()
        tuner.record(config, _obs())
        assert tuner.session.strategy.ctx.traffic.rate_per_s == 2.0
        traffic = tuner.set_traffic(arrival_rate_per_s=4.0, output_tokens=128)
        assert (traffic.rate_per_s, traffic.output_tokens, traffic.arrivals) == (4.0, 128, "uniform")
        assert tuner.traffic is traffic and tuner.session.strategy.ctx.traffic is traffic
        tuner.finish()
    data = read_run_log(log)
    assert data.header.arrival_rate_per_s == 2.0 and data.header.mode == "library"
    assert len(data.rounds) == 1 and data.summary is not None


def test_bad_settings_are_config_errors(linear_platform):
    device, *_ = linear_platform()
    with pytest.raises(edpilot.ConfigError, match="unknown objective"):
        edpilot.Tuner(device, arrival_rate_per_s=1.0, objective="speed")
    with pytest.raises(edpilot.WorkloadError, match="arrival rate"):
        edpilot.Tuner(device, arrival_rate_per_s=0.0)
    with pytest.raises(edpilot.ConfigError, match="say the traffic once"):
        edpilot.Tuner(device)
    with pytest.raises(edpilot.ConfigError, match="drop arrival_rate_per_s, output_tokens, or the workload"):
        edpilot.Tuner(device, workload=Workload(), arrival_rate_per_s=1.0, output_tokens=10)
    tuner = edpilot.Tuner(device, arrival_rate_per_s=1.0)
    with pytest.raises(edpilot.ConfigError, match="first round must measure the baseline"):
        tuner.record(Config.of(4, gpu_mhz=500.0), _obs())
    with pytest.raises(edpilot.ConfigError, match="not a frequency of the grid"):
        tuner.round(Config.of(4, gpu_mhz=750.0))
    with pytest.raises(edpilot.ConfigError, match="served no batch"), tuner.round(tuner.next_config()):
        pass
    with pytest.raises(edpilot.ConfigError, match="nothing was recorded"):
        tuner.finish()


def _obs() -> edpilot.Observation:
    return edpilot.Observation(
        requests=32,
        energy_per_request_j=10.0,
        mean_latency_s=2.0,
        p95_latency_s=3.0,
        mean_ttft_s=None,
        power_w=20.0,
        mean_batch_s=1.0,
        energy_per_batch_j=40.0,
        window_s=16.0,
        keeps_up=True,
    )


def test_a_round_at_a_config_with_decode_levels_decodes_at_them_and_switches_back():
    from edpilot.sim import open_sim

    sim = open_sim("sim:orin-agx-32gb", seed=3)
    tuner = edpilot.Tuner(sim.device, arrival_rate_per_s=1.0, freqs=[612, 930.75], batches=[2], phase_clocks=True)
    assert [a.name for a in tuner.space.axes] == ["gpu_mhz", "decode_gpu_mhz"]
    config = Config.of(2, gpu_mhz=930.75, decode_gpu_mhz=612.0)
    seen: list[float | None] = []
    decoding = sim.engine.generate

    def generate(batch, on_token=None, *, on_decode=None):
        def hook():
            on_decode()
            seen.append(sim.device.knob_level("gpu_mhz"))

        return decoding(batch, on_token, on_decode=hook)

    sim.engine.generate = generate
    baseline = tuner.next_config()
    with tuner.round(baseline) as first:
        first.run(sim.engine, [edpilot.Request(j, sim.clock.now_s(), "p", 100, 8) for j in (0, 1)])
    assert seen == [930.75]  # the baseline decodes at its one level: nothing written
    with tuner.round(config) as rnd:
        assert rnd.phase is not None
        t0 = sim.clock.now_s()
        for i in range(0, 4, 2):
            rnd.run(sim.engine, [edpilot.Request(j, t0, "p", 100, 8) for j in (i, i + 1)])
            assert sim.device.knob_level("gpu_mhz") == 930.75  # the prefill level back after each batch
    assert seen[1:] == [612.0, 612.0]  # each batch decoded at the decode level
    assert rnd.phase is not None and rnd.phase.switches == 2
    assert rnd.record is not None and rnd.record.config == config
