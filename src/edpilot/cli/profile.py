"""`edpilot profile`: measure every config of a grid N times and write a profile table."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edpilot.backends import build_space
from edpilot.cli.common import console, handle_errors, print_json, progress_bar
from edpilot.cli.groups import Without, with_groups
from edpilot.cli.options import ConfigFileOpt, split_list
from edpilot.cli.results import describe_limits
from edpilot.cli.spec import DeviceSpec, EngineSpec, GridSpec, OutputSpec, WorkloadSpec, open_run
from edpilot.hardware.guard import guarded
from edpilot.limits import bounded
from edpilot.profiler import config_stats, profile
from edpilot.workload import Workload


@handle_errors
@with_groups
def profile_command(
    *,
    output: Annotated[
        Path, typer.Option(help="Profile table to write (CSV with # metadata lines).", rich_help_panel="Output")
    ],
    config_file: ConfigFileOpt = None,
    device: Annotated[DeviceSpec, Without("profile")],
    engine: EngineSpec,
    grid: GridSpec,
    workload: Annotated[WorkloadSpec, Without("arrival_rate", "arrivals", "trace")],
    repeats: Annotated[int, typer.Option(help="Samples (batches) per config.")] = 3,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a partial table; skip finished configs.")] = False,
    out: Annotated[OutputSpec, Without("output", "overwrite")],
) -> None:
    """Measure latency and energy of every (frequency, batch) config, N batches each.

    `edpilot tune --device sim --profile FILE` then replays the table.
    """
    bounded(repeats, "repeats", "--repeats")
    output_tokens, prompt_tokens = workload.output_tokens, workload.prompt_tokens
    requests = Workload(arrivals="saturated", output_tokens=output_tokens, prompt_tokens=prompt_tokens)
    backends = open_run(device, engine, rails=split_list(device.rails))
    with guarded(backends.device), contextlib.closing(backends.engine):
        space = build_space(
            backends, freqs=grid.freqs, batches=grid.batches, emcs=grid.emcs, phase_clocks=grid.phase_clocks
        )
        describe_limits(backends.device, quiet=out.json_output)
        engine_info = backends.engine.describe()
        device_info = backends.device.describe()
        metadata: dict[str, object] = {
            "device": device_info.get("gpu") or backends.device.name,
            "model": engine_info.get("model", engine.model),
            "engine": engine_info.get("backend"),
            "decode": engine_info.get("decode", "n/a"),
            "prompt_tokens": prompt_tokens or "shipped prompt set",
            "output_tokens": output_tokens,
            "clocks": "pinned" if backends.device.capabilities.can_set_clocks else "not pinned (read-only)",
            "meter_update_interval_ms": backends.device.capabilities.meter_update_interval_ms or "n/a",
            "date": dt.date.today().isoformat(),
        }
        with progress_bar("profiling", disable=out.json_output) as progress:
            task = progress.add_task("idle power", total=len(space) * repeats)
            rows = profile(
                device=backends.device,
                engine=backends.engine,
                space=space,
                repeats=repeats,
                workload=requests,
                output=output,
                metadata=metadata,
                resume=resume,
                seed=engine.seed,
                on_sample=lambda r: progress.update(
                    task, advance=1, description=f"{r.freq_mhz:g} MHz, batch {r.batch_size}: {r.latency_s:.3f} s"
                ),
            )
    stats = config_stats(rows, output_tokens)
    if out.json_output:
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
