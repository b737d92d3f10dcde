"""`edpilot profile`: measure every config of a grid N times and write a profile table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edpilot.backends import build_space, open_backends
from edpilot.cli.common import console, handle_errors, print_json, progress_bar
from edpilot.cli.options import (
    BatchesOpt,
    CompileOpt,
    ConfigFileOpt,
    DeviceOpt,
    DryRunOpt,
    DtypeOpt,
    EmcsOpt,
    EngineOpt,
    FixedLengthOpt,
    FreqsOpt,
    GpuLayersOpt,
    JsonOpt,
    ModelNameOpt,
    ModelOpt,
    RailsOpt,
    ReadOnlyOpt,
    RequestTimeoutOpt,
    SeedOpt,
    SysfsRootOpt,
    ThreadsOpt,
    TorchDeviceOpt,
    engine_options,
    split_list,
)
from edpilot.cli.results import describe_limits
from edpilot.engine import DEFAULT_REQUEST_TIMEOUT_S
from edpilot.hardware.guard import guarded
from edpilot.limits import bounded
from edpilot.profiler import config_stats, profile
from edpilot.space import parse_batch_sizes
from edpilot.workload import Workload


@handle_errors
def profile_command(
    output: Annotated[Path, typer.Option(help="Profile table to write (CSV with # metadata lines).")],
    config_file: ConfigFileOpt = None,
    device: DeviceOpt = "sim",
    engine: EngineOpt = "sim",
    model: ModelOpt = "llama-3.2-1b",
    freqs: FreqsOpt = None,
    emcs: EmcsOpt = None,
    batches: BatchesOpt = None,
    repeats: Annotated[int, typer.Option(help="Samples (batches) per config.")] = 3,
    output_tokens: Annotated[int, typer.Option(help="New tokens each request generates.")] = 128,
    prompt_tokens: Annotated[
        int | None, typer.Option(help="Fixed prompt length; default: the shipped prompt set.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a partial table; skip finished configs.")] = False,
    seed: SeedOpt = 0,
    sysfs_root: SysfsRootOpt = None,
    rails: RailsOpt = None,
    dry_run: DryRunOpt = False,
    read_only: ReadOnlyOpt = False,
    torch_device: TorchDeviceOpt = None,
    dtype: DtypeOpt = None,
    compile_decode: CompileOpt = False,
    fixed_output_length: FixedLengthOpt = True,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    model_name: ModelNameOpt = None,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT_S,
    json_output: JsonOpt = False,
) -> None:
    """Measure latency and energy of every (frequency, batch) config, N batches each.

    `edpilot tune --device sim --profile FILE` then replays the table.
    """
    bounded(repeats, "repeats", "--repeats")
    bounded(output_tokens, "output_tokens", "--output-tokens")
    if prompt_tokens is not None:
        bounded(prompt_tokens, "prompt_tokens", "--prompt-tokens")
    bounded(seed, "seed", "--seed")
    if batches is not None:
        parse_batch_sizes(batches)
    workload = Workload(arrivals="saturated", output_tokens=output_tokens, prompt_tokens=prompt_tokens)
    backends = open_backends(
        device=device,
        engine=engine,
        model=model,
        seed=seed,
        sysfs_root=sysfs_root,
        rails=split_list(rails),
        dry_run=dry_run,
        read_only=read_only,
        engine_options=engine_options(
            seed=seed,
            torch_device=torch_device,
            dtype=dtype,
            compiled=compile_decode,
            fixed_output_length=fixed_output_length,
            threads=threads,
            gpu_layers=gpu_layers,
            model_name=model_name,
            request_timeout_s=request_timeout,
        ),
    )
    with guarded(backends.device):
        space = build_space(backends, freqs=freqs, batches=batches, emcs=emcs)
        describe_limits(backends.device, quiet=json_output)
        engine_info = backends.engine.describe()
        device_info = backends.device.describe()
        metadata: dict[str, object] = {
            "device": device_info.get("gpu") or backends.device.name,
            "model": engine_info.get("model", model),
            "engine": engine_info.get("backend"),
            "decode": engine_info.get("decode", "n/a"),
            "prompt_tokens": prompt_tokens or "shipped prompt set",
            "output_tokens": output_tokens,
            "clocks": "pinned" if backends.device.capabilities.can_set_clocks else "not pinned (read-only)",
            "meter_update_interval_ms": backends.device.capabilities.meter_update_interval_ms or "n/a",
            "date": dt.date.today().isoformat(),
        }
        with progress_bar("profiling", disable=json_output) as progress:
            task = progress.add_task("idle power", total=len(space) * repeats)
            rows = profile(
                device=backends.device,
                engine=backends.engine,
                space=space,
                repeats=repeats,
                workload=workload,
                output=output,
                metadata=metadata,
                resume=resume,
                seed=seed,
                on_sample=lambda r: progress.update(
                    task, advance=1, description=f"{r.freq_mhz:g} MHz, batch {r.batch_size}: {r.latency_s:.3f} s"
                ),
            )
    stats = config_stats(rows, output_tokens)
    if json_output:
        print_json([{**s.__dict__, "config": s.config.__dict__} for s in stats])
        return
    table = Table(title=f"{output}: {len(rows)} samples")
    for col in ("freq (MHz)", "batch", "samples", "latency (s)", "tokens/s", "J/token", "power (W)"):
        table.add_column(col, justify="right")
    for s in stats:
        table.add_row(
            f"{s.config.freq_mhz:g}",
            str(s.config.batch_size),
            str(s.samples),
            f"{s.mean_latency_s:.3f}",
            f"{s.tokens_per_s:.1f}",
            "n/a" if s.joules_per_token is None else f"{s.joules_per_token:.4f}",
            "n/a" if s.power_w is None else f"{s.power_w:.1f}",
        )
    console.print(table)
    console.print(f"replay it: edpilot tune --device sim --profile {output}")
