"""Batch time and tokens/s vs batch size for Gemma 3 270M Q4_K_M on CPU: llama.cpp vs transformers' GGUF path.

    python benchmarks/llamacpp_vs_hf.py [--engines llamacpp:gemma-3-270m,hf:gemma-3-270m] [--batches 1,2,4,8,16]
        [--repeats 3] [--prompt-tokens 64] [--output-tokens 32] [--threads 2] [--machine "2-core x86 CI machine"]
        [--out-dir profiles]

Each engine serves one untimed warm-up batch per batch size, then `--repeats` timed batches of identical
synthetic prompts with a fixed output length. Writes one latency-only profile table per engine (the format of
`edpilot.sim.profile`; `energy_j` is empty: this CPU has no energy meter) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

from edpilot.engine import EngineOptions, open_engine
from edpilot.workload import Workload

log = logging.getLogger("llamacpp_vs_hf")


def cpu_mhz() -> float | None:
    """The clock /proc/cpuinfo reports for the first CPU (a reading, not a knob)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return round(float(line.split(":")[1]), 1)
    except OSError:
        return None
    return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(spec: str, *, batches: list[int], repeats: int, workload: Workload, threads: int) -> tuple[dict, dict]:
    """Describe the engine and time `repeats` batches per batch size: {batch_size: [latency_s, ...]}."""
    options = EngineOptions(threads=threads, torch_device="cpu", dtype="float32")
    engine = open_engine(spec, options)
    rng = np.random.default_rng(0)
    samples: dict[int, list[float]] = {}
    try:
        info = engine.describe()
        for b in batches:
            engine.generate(workload.requests(b, rng))  # warm-up: context allocation, caches
            for _ in range(repeats):
                batch = workload.requests(b, rng)
                t0 = time.perf_counter()
                out = engine.generate(batch)
                samples.setdefault(b, []).append(time.perf_counter() - t0)
                assert all(c.error is None and c.output_tokens == workload.output_tokens for c in out), out
            log.info("%s b=%d: %s s", spec, b, ", ".join(f"{s:.3f}" for s in samples[b]))
    finally:
        engine.close()
    return info, samples


def write_table(path: Path, metadata: dict[str, object], samples: dict[int, list[float]], freq_mhz: float) -> None:
    """A latency-only profile table: energy_j left empty (not measured)."""
    lines = [f"# {k}: {v}" for k, v in metadata.items()] + ["freq_mhz,batch_size,latency_s,energy_j"]
    lines += [f"{freq_mhz:g},{b},{s:.6g}," for b, runs in samples.items() for s in runs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="llamacpp:gemma-3-270m,hf:gemma-3-270m")
    parser.add_argument("--batches", default="1,2,4,8,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--machine", default="2-core x86 CI machine")
    parser.add_argument("--out-dir", type=Path, default=Path("profiles"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("edpilot.engine.llamacpp_info").setLevel(logging.WARNING)  # llama.cpp's own chatter
    workload = Workload(arrivals="saturated", prompt_tokens=args.prompt_tokens, output_tokens=args.output_tokens)
    batches = [int(b) for b in args.batches.split(",")]
    freq_mhz = cpu_mhz() or 1.0
    results = {}
    for spec in args.engines.split(","):
        info, samples = measure(spec, batches=batches, repeats=args.repeats, workload=workload, threads=args.threads)
        results[spec] = samples
        kind = spec.partition(":")[0]
        metadata = {
            "device": f"{args.machine} ({cpu_model()}, {args.threads} threads)",
            "model": "gemma-3-270m",
            "engine": kind,
            "engine_info": ", ".join(f"{k}={v}" for k, v in info.items() if k not in ("gguf", "weights")),
            "prompt_tokens": args.prompt_tokens,
            "output_tokens": args.output_tokens,
            "clocks": "not controlled (CPU); freq_mhz is /proc/cpuinfo's 'cpu MHz', a reading",
            "energy_j": "not measured (no energy meter on this CPU): latency-only rows",
            "date": date.today().isoformat(),
        }
        args.out_dir.mkdir(parents=True, exist_ok=True)
        write_table(args.out_dir / f"gemma-3-270m_cpu_{kind}.csv", metadata, samples, freq_mhz)
    print("| batch | " + " | ".join(f"{s} batch s (min / median) | {s} tok/s (best)" for s in results) + " |")
    print("|---|" + "---|---|" * len(results))
    for b in batches:
        cells = []
        for samples in results.values():
            min_s, median_s = min(samples[b]), float(np.median(samples[b]))
            cells += [f"{min_s:.3f} / {median_s:.3f}", f"{b * args.output_tokens / min_s:.1f}"]
        print(f"| {b} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
