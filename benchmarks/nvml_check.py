"""Check the NVML backend on a real GPU without changing any setting (read-only).

Default: idle and busy phases (bf16 matrix products through torch) compare the energy from NVML's
total-energy counter with the energy from sampling board power every 10 ms; measures how often the
counter updates; lists the supported clocks.

`--cv-batches 1,2,4,...`: the spread (CV) of energy per batch across profile samples of an hf model
(random weights) at each batch size, three ways, interleaved: one batch read alone, a sample as the
profiler took it before (batches back to back until 10 counter updates, window ends wherever the work
ends), and a sample as it takes it now (window starts and ends on counter updates, tail taken out).
Then idle power right after that load, and how long it takes to settle. Needs torch with CUDA and
nvidia-ml-py.

    python benchmarks/nvml_check.py [--index 0] [--busy-s 10]
    python benchmarks/nvml_check.py --cv-batches 1,2,4,8,16,32,48,64 --samples 8 --settle --json-out cv.json
    python benchmarks/nvml_check.py --fixed-job-s 0.1,0.3,1 --idle-trace-s 150 --min-updates 30 --no-alone
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from edpilot.clock import WallClock
from edpilot.engine.hf import HfEngine
from edpilot.hardware.meter import SampledEnergyMeter
from edpilot.hardware.nvml import NvmlDevice
from edpilot.profiler import measure_idle_power_w, measure_sample, settle_idle
from edpilot.serving.window import EnergyWindow
from edpilot.workload import Workload


def busy(clock: WallClock, seconds: float, size: int = 8192) -> int:
    """bf16 matrix products for `seconds`; returns how many ran."""
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    n, end = 0, clock.now_s() + seconds
    while clock.now_s() < end:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()
        n += 20
    return n


def counter_update_ms(dev: NvmlDevice, clock: WallClock, seconds: float = 2.0) -> float:
    """Mean time between changes of the total-energy counter, polled every 1 ms under load."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)

    def read_mj() -> int:
        return dev.nvml.call("nvmlDeviceGetTotalEnergyConsumption", dev.handle, what="read the energy counter")

    changes, last, end = [], read_mj(), clock.now_s() + seconds
    while clock.now_s() < end:
        a @ a
        value = read_mj()
        if value != last:
            changes.append(clock.now_s())
            last = value
        clock.sleep(0.001)
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    return 1000 * sum(gaps) / len(gaps) if gaps else float("nan")


def phases_report(dev: NvmlDevice, clock: WallClock, busy_s: float) -> dict[str, object]:
    """Counter against 10 ms sampled power over idle and busy phases, and the counter's update interval."""
    sampler = SampledEnergyMeter(dev.power_w, interval_s=0.01)
    levels = dev.freqs_mhz()
    phases = []
    for name, seconds in (("idle", 3.0), ("busy", busy_s), ("idle", 3.0), ("busy", busy_s / 2)):
        c0, s0, t0 = dev.energy_j(), sampler.energy_j(), clock.now_s()
        products = busy(clock, seconds) if name == "busy" else 0
        if name == "idle":
            clock.sleep(seconds)
        c1, s1, t1 = dev.energy_j(), sampler.energy_j(), clock.now_s()
        phases.append(
            {
                "phase": name,
                "seconds": round(t1 - t0, 3),
                "counter_j": round(c1 - c0, 2),
                "sampled_j": round(s1 - s0, 2),
                "diff_pct": round(100 * ((s1 - s0) / (c1 - c0) - 1), 2),
                "mean_power_w": round((c1 - c0) / (t1 - t0), 1),
                "sm_clock_mhz_at_end": dev.current_freq_mhz(),
                "tflops": round(products * 2 * 8192**3 / (t1 - t0) / 1e12, 1) if products else None,
            }
        )
    sampler.close()
    total_counter = sum(p["counter_j"] for p in phases)
    total_sampled = sum(p["sampled_j"] for p in phases)
    report: dict[str, object] = {
        "device": dev.describe() | {"freqs_mhz": f"{len(levels)} levels, {levels[0]:g}..{levels[-1]:g} MHz"},
        "phases": phases,
        "total_counter_j": round(total_counter, 1),
        "total_sampled_j": round(total_sampled, 1),
        "total_diff_pct": round(100 * (total_sampled / total_counter - 1), 2),
        "counter_update_ms": round(counter_update_ms(dev, clock), 1),
        "read_only_set_refused": None,
    }
    try:
        dev.set_freq_mhz(levels[-1])
    except Exception as exc:  # noqa: BLE001 - we expect the read-only refusal here
        report["read_only_set_refused"] = str(exc)
    return report


def cv_pct(values: list[float]) -> float:
    """Coefficient of variation (%), sample standard deviation over mean."""
    return round(100 * float(np.std(values, ddof=1) / np.mean(values)), 2)


def single_batch_j(dev: NvmlDevice, engine: object, batch: list) -> float:
    """One batch in one unaligned window: what a per-batch read sees."""
    with EnergyWindow(dev, dev.clock) as window:
        engine.generate(batch)
    return float("nan") if window.energy_j is None else window.energy_j


def spread(rows: list) -> dict[str, object]:
    """CV of energy, batch time and power (energy / time) over profile rows."""
    return {
        "cv_energy_pct": cv_pct([r.energy_j for r in rows]),
        "cv_batch_s_pct": cv_pct([r.latency_s for r in rows]),
        "cv_power_pct": cv_pct([r.energy_j / r.latency_s for r in rows]),
        "energy_j": [round(r.energy_j, 2) for r in rows],
        "batch_s": [round(r.latency_s, 4) for r in rows],
    }


def compare(dev: NvmlDevice, engine: object, batch: list, args: argparse.Namespace) -> dict[str, object]:
    """Samples taken the old way (unaligned) and the new way (aligned), interleaved; one batch alone too."""
    alone, before, after = [], [], []
    for _ in range(args.samples):
        if not args.no_alone:
            alone.append(single_batch_j(dev, engine, batch))
        before.append(measure_sample(dev, engine, batch, freq_mhz=None, align=False, min_updates=args.min_updates))
        after.append(measure_sample(dev, engine, batch, freq_mhz=None, align=True, min_updates=args.min_updates))
    return {
        "sm_clock_mhz": dev.current_freq_mhz(),
        "batch_s": round(float(np.mean([r.latency_s for r in after])), 4),
        "energy_per_batch_j": round(float(np.mean([r.energy_j for r in after])), 2),
        "cv_one_batch_pct": cv_pct(alone) if alone else None,
        "before": spread(before),
        "after": spread(after),
    }


class FixedJob:
    """A fixed amount of GPU work (bf16 4096^3 products) standing in for a batch: its time barely varies."""

    def __init__(self, seconds: float) -> None:
        self.a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
        self.products = 1
        t0 = torch.cuda.Event(enable_timing=True)
        t1 = torch.cuda.Event(enable_timing=True)
        for _ in range(3):
            t0.record()
            self._run(200)
            t1.record()
            torch.cuda.synchronize()
        self.products = max(1, int(seconds / (t0.elapsed_time(t1) / 1000 / 200)))

    def _run(self, n: int) -> None:
        for _ in range(n):
            self.a @ self.a
        torch.cuda.synchronize()

    def generate(self, batch: list) -> list:
        self._run(self.products)
        return []


def idle_trace(dev: NvmlDevice, seconds: float, step_s: float = 0.5) -> list[list[float]]:
    """[seconds since start, counter power over the step (W), SM clock (MHz)] every step while idle."""
    clock, out = dev.clock, []
    t0 = t_prev = clock.now_s()
    e_prev = dev.energy_j()
    while clock.now_s() - t0 < seconds:
        clock.sleep(step_s)
        t, e = clock.now_s(), dev.energy_j()
        out.append([round(t - t0, 2), round((e - e_prev) / (t - t_prev), 1), dev.current_freq_mhz()])
        t_prev, e_prev = t, e
    return out


def cv_report(dev: NvmlDevice, args: argparse.Namespace) -> dict[str, object]:
    """Energy per batch and its spread, old and new sampling: fixed GPU jobs, then the hf engine per batch size."""
    report: dict[str, object] = {"min_updates": args.min_updates, "samples_per_way": args.samples}
    if args.fixed_job_s:
        jobs = []
        for seconds in [float(x) for x in args.fixed_job_s.split(",")]:
            job = FixedJob(seconds)
            job.generate([])
            jobs.append({"job_s": seconds, "products": job.products, **compare(dev, job, [], args)})
            print(json.dumps(jobs[-1]), flush=True)
        report["fixed_jobs"] = jobs
    if args.idle_trace_s:
        report["idle_trace_after_load"] = idle_trace(dev, args.idle_trace_s)
        print(json.dumps(report["idle_trace_after_load"]), flush=True)
    if args.cv_batches:
        engine = HfEngine(args.model, device="cuda", seed=0)
        workload = Workload(arrivals="saturated", output_tokens=args.output_tokens, prompt_tokens=args.prompt_tokens)
        rng = np.random.default_rng(0)
        rows = []
        for b in [int(x) for x in args.cv_batches.split(",")]:
            batch = workload.requests(b, rng)
            for _ in range(2):
                engine.generate(batch)  # warm-up: the first call at a new shape is seconds slower
            rows.append({"batch_size": b, **compare(dev, engine, batch, args)})
            print(json.dumps(rows[-1]), flush=True)
        report |= {
            "model": f"{args.model} (hf, random weights, bf16, eager)",
            "prompt_tokens": args.prompt_tokens,
            "output_tokens": args.output_tokens,
            "rows": rows,
        }
    if args.settle:
        right_after_w = measure_idle_power_w(dev, 2.0)
        settle = settle_idle(dev)
        report |= {
            "idle_right_after_load_w": round(right_after_w, 1),
            "idle_settle_readings_w": [round(w, 1) for w in settle.readings_w],
            "idle_settle_s": round(settle.settle_s, 1),
            "idle_settled": settle.settled,
            "idle_settled_w": round(measure_idle_power_w(dev), 1),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--busy-s", type=float, default=10.0)
    parser.add_argument("--cv-batches", help="measure the CV of energy per batch at these batch sizes")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--model", default="llama-3.2-1b")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--min-updates", type=int, default=10, help="counter updates a sample spans at least")
    parser.add_argument("--no-alone", action="store_true", help="skip the one-batch-alone reads")
    parser.add_argument("--fixed-job-s", help="also sample fixed GPU jobs of about these lengths (s)")
    parser.add_argument("--idle-trace-s", type=float, help="then trace idle power and SM clock this long")
    parser.add_argument("--settle", action="store_true", help="then settle idle power and report it")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    dev = NvmlDevice(args.index, read_only=True)
    sampling = args.cv_batches or args.fixed_job_s or args.idle_trace_s or args.settle
    try:
        report = cv_report(dev, args) if sampling else phases_report(dev, WallClock(), args.busy_s)
    finally:
        dev.close()
    text = json.dumps(report, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
