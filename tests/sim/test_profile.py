"""Profile tables: reading, validation errors, atomic writing, replay."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.errors import ProfileError
from edpilot.objective import Objective
from edpilot.sim import ProfileModel, ProfileRow, read_profile, write_profile
from edpilot.space import Config
from edpilot.workload import Workload

GOOD = (
    "# device: test\n# idle_power_w: 4.5\nfreq_mhz,batch_size,latency_s,energy_j\n"
    "500,1,1.0,10\n500,1,1.2,12\n900,2,0.8,9\n"
)


def test_reads_metadata_rows_and_grid(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(GOOD)
    t = read_profile(p)
    assert t.metadata == {"device": "test", "idle_power_w": "4.5"}
    assert t.idle_power_w == 4.5
    assert t.configs == [Config.of(1, gpu_mhz=500.0), Config.of(2, gpu_mhz=900.0)]
    assert t.samples(Config.of(1, gpu_mhz=500.0)).tolist() == [[1.0, 10.0], [1.2, 12.0]]


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "no samples"),
        ("# idle_power_w: 1\n", "no samples"),
        ("freq,batch,lat,energy\n500,1,1,1\n", "header must be"),
        ("freq_mhz,batch_size,latency_s,energy_j\n500,1,abc,1\n900,1,1,1\n", "non-numeric"),
        (
            "freq_mhz,batch_size,latency_s,energy_j\n500,1,1,-3\n900,1,1,1\n",
            ":2: energy_j must be a finite number between 0",
        ),
        (
            "freq_mhz,batch_size,latency_s,energy_j\n500,1,1e30,3\n900,1,1,1\n",
            ":2: latency_s must be a finite number > 0",
        ),
        (
            "freq_mhz,batch_size,latency_s,energy_j\n500,1e30,1,3\n900,1,1,1\n",
            "batch_size must be a whole number between",
        ),
        ("freq_mhz,batch_size,latency_s,energy_j\n500,1,1," + "9" * 5001 + "\n900,1,1,1\n", "got inf"),
        ("freq_mhz,batch_size,latency_s,energy_j\n500,1.5,1,3\n900,1,1,1\n", "whole number"),
        ("freq_mhz,batch_size,latency_s,energy_j\n500,1,1\n", "expected 4 values"),
        ("freq_mhz,batch_size,latency_s,energy_j\n500,1,1,1\n500,1,2,2\n", "only one config"),
    ],
)
def test_malformed_profiles_raise_with_line(tmp_path, text, message):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ProfileError, match=message):
        read_profile(p)


def test_an_idle_power_past_any_board_is_refused(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("# idle_power_w: 1e300\nfreq_mhz,batch_size,latency_s,energy_j\n500,1,1,3\n900,1,1,1\n")
    with pytest.raises(ProfileError, match=r"idle_power_w must be between 0 and 1e\+06 W, got 1e\+300"):
        _ = read_profile(p).idle_power_w


def test_missing_profile(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        read_profile(tmp_path / "nope.csv")


def test_idle_power_required_when_used(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(GOOD.replace("# idle_power_w: 4.5\n", ""))
    with pytest.raises(ProfileError, match="idle_power_w"):
        _ = read_profile(p).idle_power_w


def test_write_then_read_round_trips(tmp_path):
    rows = [ProfileRow(1300.5, 4, 2.5, 40.25), ProfileRow(114.75, 1, 9.0, 30.0)]
    p = tmp_path / "sub" / "w.csv"
    write_profile(p, {"device": "x", "idle_power_w": 3.0}, rows)
    t = read_profile(p)
    assert t.rows == rows
    assert list(tmp_path.joinpath("sub").iterdir()) == [p]  # no temp file left


def test_replay_draws_recorded_samples(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(GOOD)
    m = ProfileModel(read_profile(p))
    rng = np.random.default_rng(0)
    draws = {m.batch_cost(500.0, [10], 70, rng).service_s for _ in range(50)}
    assert draws == {1.0, 1.2}
    assert m.idle_power_w(900.0) == 4.5


def test_a_latency_only_table_replays_without_inventing_energy(tmp_path):
    from edpilot.backends import open_backends
    from tests.conftest import run_tune

    path = tmp_path / "cpu.csv"
    path.write_text("# device: cpu\nfreq_mhz,batch_size,latency_s,energy_j\n1000,1,1.0,\n1000,4,2.0,\n")
    table = read_profile(path)
    assert not table.has_energy and [r.energy_j for r in table.rows] == [None, None]
    backends = open_backends(device="sim", profile=str(path))
    assert backends.device.energy_j() is None and not backends.device.capabilities.has_meter
    result = run_tune(backends, objective=Objective("latency"), budget=2, workload=Workload(arrivals="saturated"))
    assert result.best.energy_per_request_j is None and result.best.config.batch_size in (1, 4)


def test_energy_on_some_rows_only_is_refused(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("freq_mhz,batch_size,latency_s,energy_j\n1000,1,1.0,\n1000,4,2.0,5.0\n")
    with pytest.raises(ProfileError, match="some rows"):
        read_profile(path)


KNOBS = (
    "# device: orin\n# idle_power_w: 5\n# output_tokens: 70\ngpu_mhz,emc_mhz,batch_size,latency_s,energy_j\n"
    "500,665.6,1,2.0,20\n500,3199,1,1.0,14\n900,665.6,1,1.8,24\n900,3199,1,0.8,16\n500,3199,2,1.2,18\n"
)


def test_a_table_with_a_column_per_knob_reads_and_writes_back(tmp_path):
    p = tmp_path / "knobs.csv"
    p.write_text(KNOBS)
    t = read_profile(p)
    assert t.knob_names == ("gpu_mhz", "emc_mhz") and t.levels_of("emc_mhz") == (665.6, 3199.0)
    assert t.freqs_mhz == (500.0, 900.0) and t.batch_sizes == (1, 2)
    assert t.samples(Config.of(1, gpu_mhz=900.0, emc_mhz=665.6)).tolist() == [[1.8, 24.0]]
    assert t.samples(Config.of(2, gpu_mhz=900.0, emc_mhz=3199.0)).tolist() == [[0.8, 16.0]]  # nearest batch
    with pytest.raises(ProfileError, match="no samples at 700 MHz GPU, 665.6 MHz EMC"):
        t.samples(Config.of(1, gpu_mhz=700.0, emc_mhz=665.6))
    out = tmp_path / "out.csv"
    write_profile(out, t.metadata, t.rows)
    assert out.read_text().splitlines()[3] == "freq_mhz,emc_mhz,batch_size,latency_s,energy_j"
    assert read_profile(out).rows == t.rows


def test_a_table_written_before_named_axes_has_no_memory_clock(tmp_path):
    p = tmp_path / "old.csv"
    p.write_text(GOOD)
    t = read_profile(p)
    assert t.knob_names == ("gpu_mhz",) and t.levels_of("emc_mhz") == ()
    assert [r.config for r in t.rows][:1] == [Config.of(1, gpu_mhz=500.0)]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("emc_mhz,gpu_mhz,batch_size,latency_s,energy_j", "header must be"),
        ("freq_mhz,emc,batch_size,latency_s,energy_j", "'emc' is not a knob"),
        ("freq_mhz,emc_mhz,emc_mhz,batch_size,latency_s,energy_j", "or twice"),
        ("freq_mhz,gpu_mhz,batch_size,latency_s,energy_j", "'gpu_mhz' is not a knob"),
    ],
)
def test_bad_knob_headers_are_refused(tmp_path, header, message):
    p = tmp_path / "bad.csv"
    p.write_text(f"{header}\n500,665.6,1,1,1\n900,665.6,1,1,1\n")
    with pytest.raises(ProfileError, match=message):
        read_profile(p)


def test_a_knob_table_replays_over_the_memory_clock_and_refuses_emcs_on_an_old_table(tmp_path):
    from edpilot.backends import build_space, open_backends
    from edpilot.errors import ConfigError
    from edpilot.runner import Runner

    p = tmp_path / "knobs.csv"
    p.write_text(KNOBS)
    backends = open_backends(device="sim", profile=str(p))
    device = backends.device
    assert [k.name for k in device.knobs()] == ["gpu_mhz", "emc_mhz"] and device.knob_level("emc_mhz") == 3199.0
    space = build_space(backends, emcs="all", batches="1")
    assert len(space) == 4
    runner = Runner(device, backends.engine, Workload(arrivals="saturated"), requests_per_round=3)
    assert runner.measure(Config.of(1, gpu_mhz=900.0, emc_mhz=665.6)).mean_batch_s == pytest.approx(1.8)
    assert runner.measure(Config.of(1, gpu_mhz=900.0, emc_mhz=3199.0)).mean_batch_s == pytest.approx(0.8)
    assert build_space(backends, batches="1").knob_names == ("gpu_mhz",)  # without --emcs: at the board's level
    old = tmp_path / "old.csv"
    old.write_text(GOOD)
    with pytest.raises(ConfigError, match="the profile has no emc_mhz column"):
        build_space(open_backends(device="sim", profile=str(old)), emcs="all")
