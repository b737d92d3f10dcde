"""Check the NVML backend on a real GPU without changing any setting (read-only).

Runs idle and busy phases (bf16 matrix products through torch) and compares the energy from NVML's
total-energy counter with the energy from sampling board power every 10 ms; measures how often the
counter updates; lists the supported clocks. Needs torch with CUDA and nvidia-ml-py.

    python benchmarks/nvml_check.py [--index 0] [--busy-s 10]
"""

from __future__ import annotations

import argparse
import json

import torch

from edpilot.clock import WallClock
from edpilot.hardware.meter import SampledEnergyMeter
from edpilot.hardware.nvml import NvmlDevice


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
        return dev.nvml.call("nvmlDeviceGetTotalEnergyConsumption", dev.handle, what="reading the energy counter")

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--busy-s", type=float, default=10.0)
    args = parser.parse_args()
    clock = WallClock()
    dev = NvmlDevice(args.index, read_only=True)
    sampler = SampledEnergyMeter(dev.power_w, interval_s=0.01)
    levels = dev.freqs_mhz()
    phases = []
    for name, seconds in (("idle", 3.0), ("busy", args.busy_s), ("idle", 3.0), ("busy", args.busy_s / 2)):
        c0, s0, t0 = dev.energy_j(), sampler.energy_j(), clock.now_s()
        clocks_seen = []
        if name == "busy":
            products = busy(clock, seconds)
            clocks_seen.append(dev.current_freq_mhz())
        else:
            clock.sleep(seconds)
            products = 0
        c1, s1, t1 = dev.energy_j(), sampler.energy_j(), clock.now_s()
        phases.append(
            {
                "phase": name,
                "seconds": round(t1 - t0, 3),
                "counter_j": round(c1 - c0, 2),
                "sampled_j": round(s1 - s0, 2),
                "diff_pct": round(100 * ((s1 - s0) / (c1 - c0) - 1), 2),
                "mean_power_w": round((c1 - c0) / (t1 - t0), 1),
                "sm_clock_mhz_at_end": clocks_seen[-1] if clocks_seen else dev.current_freq_mhz(),
                "tflops": round(products * 2 * 8192**3 / (t1 - t0) / 1e12, 1) if products else None,
            }
        )
    total_counter = sum(p["counter_j"] for p in phases)
    total_sampled = sum(p["sampled_j"] for p in phases)
    report = {
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
    sampler.close()
    dev.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
