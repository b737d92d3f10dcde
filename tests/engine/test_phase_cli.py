"""`--phase-clocks` from the command line: decode levels as axes of the grid, switched per batch, and refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edpilot.backends import build_space, open_backends
from edpilot.bench.oracle import true_hardware
from edpilot.cli import app
from edpilot.sim import Levels, SimDevice

runner = CliRunner()
GRID = ["--device", "sim", "--freqs", "612,930.75", "--batches", "2"]


def test_tune_searches_decode_levels_and_switches_at_every_batch(tmp_path, monkeypatch):
    writes = []
    real = SimDevice.set_knob
    monkeypatch.setattr(SimDevice, "set_knob", lambda dev, name, level: writes.append(level) or real(dev, name, level))
    log = tmp_path / "run.jsonl"
    args = ["tune", *GRID, "--phase-clocks", "--strategy", "grid", "--budget", "4", "--output", str(log), "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["axes"]["decode_gpu_mhz"] == [612.0, 930.75]
    rounds = [x for x in records if x["type"] == "round"]
    pairs = {(x.get("gpu_mhz", x["freq_mhz"]), x["decode_gpu_mhz"]) for x in rounds}
    assert pairs == {(612.0, 612.0), (612.0, 930.75), (930.75, 612.0), (930.75, 930.75)}
    # Each batch of a round whose levels differ writes the decode level, then the prefill level back.
    switched = sum(1 for a, b in zip(writes, writes[1:]) if (a, b) in ((612.0, 930.75), (930.75, 612.0)))
    assert switched >= 2 * 2 * 2  # two such rounds, two batches or more each, two writes per batch


def test_the_oracle_prices_a_decode_level_per_phase():
    backends = open_backends(device="sim", engine="sim", model="llama-3.2-1b", seed=0)
    space = build_space(backends, freqs="612,930.75", batches="4", phase_clocks=True)
    hw = true_hardware(backends, space, prompt_tokens=1500, output_tokens=70)
    model = backends.device.model
    for i, c in enumerate(space):
        want = model.phase_cost(
            Levels(c.level("gpu_mhz"), 3199.0), Levels(c.decode_levels()["gpu_mhz"], 3199.0), [1500] * 4, 70
        ).batch_cost()
        assert (hw.service_s[i], hw.energy_per_batch_j[i]) == pytest.approx((want.service_s, want.energy_j), rel=1e-12)
        assert hw.idle_power_w[i] == pytest.approx(model.idle_power_w(c.level("gpu_mhz"), emc_mhz=3199.0))
    assert len(set(hw.service_s)) == 4  # four different prices: the decode level counts


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--device", "sim", "--batching", "continuous"], "--phase-clocks needs static batching"),
        (["--device", "sim", "--read-only"], "--phase-clocks needs a clock searched at two levels or more"),
        (["--device", "sim", "--freqs", "930.75"], "--phase-clocks needs a clock searched at two levels or more"),
        (["--device", "cpu", "--engine", "openai:http://127.0.0.1:9"], "needs an engine that sees its prefill end"),
    ],
)
def test_what_cannot_switch_per_phase_is_one_line_and_exit_2(extra, says):
    r = runner.invoke(app, ["tune", "--phase-clocks", "--budget", "2", *extra])
    assert r.exit_code == 2, r.output
    assert says in r.output and "Traceback" not in r.output


def test_profile_measures_every_prefill_decode_pair_and_records_the_decode_level(tmp_path, monkeypatch):
    writes = []
    real = SimDevice.set_knob
    monkeypatch.setattr(SimDevice, "set_knob", lambda dev, name, level: writes.append(level) or real(dev, name, level))
    table = tmp_path / "profile.csv"
    r = runner.invoke(app, ["profile", *GRID, "--phase-clocks", "--repeats", "1", "--output", str(table), "--json"])
    assert r.exit_code == 0, r.output
    lines = [line for line in table.read_text().splitlines() if not line.startswith("#")]
    header = lines[0].split(",")
    assert header[:2] == ["freq_mhz", "decode_gpu_mhz"] or header[:2] == ["gpu_mhz", "decode_gpu_mhz"]
    assert sorted(tuple(float(v) for v in line.split(",")[:2]) for line in lines[1:]) == [
        (612.0, 612.0),
        (612.0, 930.75),
        (930.75, 612.0),
        (930.75, 930.75),
    ]
    assert sum(1 for a, b in zip(writes, writes[1:]) if (a, b) in ((612.0, 930.75), (930.75, 612.0))) >= 2 * 2


def test_serve_at_a_fixed_config_takes_no_phase_clocks():
    r = runner.invoke(app, ["serve", "--device", "sim", "--freq", "930.75", "--batch", "4", "--phase-clocks"])
    assert r.exit_code == 2, r.output
    assert "--phase-clocks" in r.output and "a fixed config takes none of them" in r.output
