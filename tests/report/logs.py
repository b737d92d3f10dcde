"""Run logs for report tests, written with the core's own records and `RunLog`, so they have the shape `tune` writes."""

from __future__ import annotations

from edpilot.objective import Observation
from edpilot.records import RoundRecord, RunHeader, Summary
from edpilot.runlog import RunLog, RunLogData, read_run_log
from edpilot.space import Config
from edpilot.stats import ConfigStats

CPU = {"backend": "cpu", "name": "cpu", "can_set_clocks": False, "energy_meter": False}


def obs(e, lat, *, b=4, f=900.0, keeps=True, failed=False):
    """A window as the runner reports it; `e` None is a device without an energy meter (cpu)."""
    return Observation(
        requests=8,
        energy_per_request_j=e,
        mean_latency_s=lat,
        p95_latency_s=lat * 1.5,
        mean_ttft_s=lat / 10,
        power_w=None if e is None else e * 8 / 40.0,
        mean_batch_s=lat / 2,
        energy_per_batch_j=None if e is None else e * b,
        window_s=40.0,
        keeps_up=keeps,
        actual_freq_mhz=f,
        failed_requests=8 if failed else 0,
        meter_updates=None if e is None else 400.0,
        first_error="connection refused" if failed else None,
    )


def rnd(i, f, b, e, lat, *, cost=None, keeps=True):
    o = obs(e, lat, b=b, f=f, keeps=keeps)
    return RoundRecord(
        i, "baseline" if i == 0 else "search", Config.of(b, gpu_mhz=f), o, o.edp if cost is None else cost
    )


def header(*, objective="edp", scope="total", device=None, freqs=(500.0, 900.0), baseline=(900.0, 4)):
    return RunHeader(
        version="0.1.0",
        device=device or {"backend": "sim", "name": "sim:orin-agx-32gb", "can_set_clocks": True},
        engine={"backend": "sim", "model": "llama-3.2-1b"},
        model="llama-3.2-1b",
        arrivals="uniform",
        arrival_rate_per_s=1.0,
        output_tokens=70.0,
        objective=objective,
        energy_scope=scope,
        strategy="grid",
        budget=4,
        seed=0,
        freqs_mhz=list(freqs),
        batch_sizes=[1, 4],
        baseline={"freq_mhz": baseline[0], "batch_size": baseline[1]},
    )


def summary(rounds, best, baseline, objective="edp"):
    stats: dict[Config, ConfigStats] = {}
    for r in rounds:
        stats.setdefault(r.config, ConfigStats(r.config)).add(r.obs, r.cost)
    return Summary(objective, stats[best].to_dict(), stats[baseline].to_dict(), len(rounds) - 1, 0)


def write(path, *records):
    """Write `records` as `tune` does."""
    with RunLog(path) as log:
        for record in records:
            log.write(record)


def read(tmp_path, *records, name="run.jsonl") -> RunLogData:
    """Write `records` and read them back."""
    write(tmp_path / name, *records)
    return read_run_log(tmp_path / name)


def latency_only():
    """What the cpu device writes: no clock knob (freq null), no energy meter (energy fields null)."""
    rounds = [
        RoundRecord(i, "baseline" if i == 0 else "search", Config.of(b, gpu_mhz=None), o, o.mean_latency_s)
        for i, (b, lat) in enumerate([(4, 9.0), (1, 2.0), (2, 4.0)])
        for o in [obs(None, lat, b=b, f=None)]
    ]
    head = header(objective="latency", device=CPU, freqs=(None,), baseline=(None, 4))
    return [head, *rounds, summary(rounds, Config.of(1, gpu_mhz=None), Config.of(4, gpu_mhz=None), "latency")]
