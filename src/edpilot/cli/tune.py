"""`edpilot tune`: search GPU frequency × batch size for the lowest EDP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edpilot import __version__
from edpilot.backends import build_space, open_backends
from edpilot.cli.common import console, err_console, handle_errors, print_json, progress_bar
from edpilot.cli.options import (
    BatchesOpt,
    CompileOpt,
    DeviceOpt,
    DryRunOpt,
    DtypeOpt,
    EngineOpt,
    FixedLengthOpt,
    FreqsOpt,
    JsonOpt,
    ModelOpt,
    RailsOpt,
    ReadOnlyOpt,
    SeedOpt,
    SysfsRootOpt,
    TorchDeviceOpt,
    split_list,
)
from edpilot.engine import EngineOptions
from edpilot.errors import ConfigError
from edpilot.hardware import Device
from edpilot.hardware.guard import guarded
from edpilot.objective import parse_objective
from edpilot.runlog import RunLog
from edpilot.runner import Runner
from edpilot.search import STRATEGIES
from edpilot.space import parse_config
from edpilot.tuner import Round, TuneResult, tune
from edpilot.workload import RequestSource, TraceWorkload, Workload, read_trace

MIN_WINDOWS_PER_INTERVAL = 10  # a window should span many power-averaging intervals


@handle_errors
def tune_command(
    device: DeviceOpt = "sim",
    profile: Annotated[
        Path | None, typer.Option(help="Replay this profile table (CSV) instead of the analytic simulator.")
    ] = None,
    model: ModelOpt = "llama-3.2-1b",
    engine: EngineOpt = "sim",
    arrival_rate: Annotated[float, typer.Option(help="Requests per second (λ).")] = 1.0,
    arrivals: Annotated[
        str, typer.Option(help="Arrival process: uniform (every 1/λ s), poisson, saturated.")
    ] = "uniform",
    trace: Annotated[
        Path | None, typer.Option(help='Replay a JSONL trace of {"arrival_s", "prompt", "max_new_tokens"}.')
    ] = None,
    output_tokens: Annotated[int, typer.Option(help="New tokens each request generates.")] = 70,
    prompt_tokens: Annotated[
        int | None, typer.Option(help="Fixed prompt length; default: the shipped prompt set.")
    ] = None,
    freqs: FreqsOpt = None,
    batches: BatchesOpt = None,
    baseline: Annotated[
        str | None, typer.Option(help="FREQ_MHZ,BATCH to compare against; default: highest level, largest batch.")
    ] = None,
    strategy: Annotated[str, typer.Option(help=f"Search strategy: {', '.join(STRATEGIES)}.")] = "camel",
    budget: Annotated[int, typer.Option(help="Search rounds after the baseline round.")] = 30,
    seed: SeedOpt = 0,
    objective: Annotated[
        str, typer.Option(help="edp, ed2p, energy, latency, or weighted:ALPHA (the paper's cost).")
    ] = "edp",
    energy_scope: Annotated[
        str, typer.Option(help="total: idle time between batches counts; active: batch service only.")
    ] = "total",
    requests_per_round: Annotated[
        int, typer.Option(help="Requests per measurement window (rounded up to whole batches, at least 2).")
    ] = 32,
    max_wait: Annotated[
        float | None, typer.Option(help="Flush a partial batch once its oldest request waited this long (s).")
    ] = None,
    sysfs_root: SysfsRootOpt = None,
    rails: RailsOpt = None,
    dry_run: DryRunOpt = False,
    read_only: ReadOnlyOpt = False,
    torch_device: TorchDeviceOpt = None,
    dtype: DtypeOpt = None,
    compile_decode: CompileOpt = False,
    fixed_output_length: FixedLengthOpt = True,
    output: Annotated[Path | None, typer.Option(help="Write the run log (JSONL), round by round.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Find the GPU frequency and batch size with the lowest energy-delay product.

    With no options: the paper's setting on the simulated Jetson AGX Orin 32GB (MAXN), Llama-3.2-1B,
    a request every second, 70 output tokens, 7 GPU levels x batch 4..28, camel search.
    """
    workload: RequestSource
    if trace is not None:
        workload = TraceWorkload(read_trace(trace))
    else:
        workload = Workload(
            arrivals=arrivals,  # type: ignore[arg-type]
            rate_per_s=arrival_rate,
            output_tokens=output_tokens,
            prompt_tokens=prompt_tokens,
        )
    obj = parse_objective(objective)
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    backends = open_backends(
        device=device,
        engine=engine,
        model=model,
        profile=str(profile) if profile else None,
        seed=seed,
        sysfs_root=sysfs_root,
        rails=split_list(rails),
        dry_run=dry_run,
        read_only=read_only,
        engine_options=EngineOptions(
            torch_device=torch_device,
            dtype=dtype,
            compiled=compile_decode,
            fixed_output_length=fixed_output_length,
            seed=seed,
        ),
    )
    with guarded(backends.device):
        space = build_space(backends, freqs=freqs, batches=batches)
        base = space.validate(parse_config(baseline)) if baseline else space.baseline()
        describe_limits(backends.device, quiet=json_output)
        runner = Runner(
            device=backends.device,
            engine=backends.engine,
            clock=backends.clock,
            workload=workload,
            requests_per_round=requests_per_round,
            energy_scope=energy_scope,  # type: ignore[arg-type]
            max_wait_s=max_wait,
            seed=seed,
        )
        with RunLog(output) as run_log:
            run_log.write(
                {
                    "type": "run",
                    "version": __version__,
                    "device": backends.device.describe(),
                    "engine": backends.engine.describe(),
                    "model": model,
                    "arrivals": workload.arrivals,
                    "arrival_rate_per_s": arrival_rate,
                    "output_tokens": output_tokens,
                    "objective": str(obj),
                    "energy_scope": energy_scope,
                    "strategy": strategy,
                    "budget": budget,
                    "seed": seed,
                    "freqs_mhz": list(space.freqs_mhz),
                    "batch_sizes": list(space.batch_sizes),
                }
            )
            with progress_bar("tuning", disable=json_output) as progress:
                task = progress.add_task("baseline", total=budget + 1)

                interval_ms = getattr(backends.device, "update_interval_ms", None)
                warned = []

                def on_round(r: Round) -> None:
                    progress.update(task, advance=1, description=f"{r.config} cost {r.cost:.4g}")
                    if interval_ms and r.obs.window_s * 1000 < MIN_WINDOWS_PER_INTERVAL * interval_ms and not warned:
                        warned.append(True)
                        err_console.print(
                            f"[yellow]warning:[/] a {r.obs.window_s:.2f} s window is short for power readings "
                            f"averaged over {interval_ms} ms; raise --requests-per-round"
                        )

                result = tune(
                    runner=runner,
                    space=space,
                    strategy=strategy,
                    objective=obj,
                    budget=budget,
                    baseline=base,
                    seed=seed,
                    run_log=run_log,
                    on_round=on_round,
                )
    if json_output:
        print_json(result.summary_record())
    else:
        console.print(result_table(result))
        if output:
            console.print(f"run log: {output}  (plots: edpilot report {output} --out DIR)")


def describe_limits(device: Device, *, quiet: bool) -> None:
    """Say on stderr when clocks will not really change (read-only device, dry run)."""
    if quiet:
        return
    if device.read_only:
        reason = getattr(device, "read_only_reason", None) or "it has no clock knob"
        current_mhz = device.current_freq_mhz()
        clock = "" if current_mhz is None else f", at the current clock {current_mhz:g} MHz"
        err_console.print(f"note: {device.name} is read-only ({reason}): searching batch size only{clock}")
    elif getattr(device, "dry_run", False):
        err_console.print("note: dry run: clocks are not changed; every round is measured at the current clock")


def result_table(result: TuneResult) -> Table:
    """The chosen config against the baseline, with the EDP gain."""
    best, base = result.best, result.baseline
    table = Table(title="edpilot tune: chosen config vs baseline")
    table.add_column("")
    table.add_column(f"baseline\n{base.config.freq_mhz:g} MHz, b={base.config.batch_size}", justify="right")
    table.add_column(f"chosen\n{best.config.freq_mhz:g} MHz, b={best.config.batch_size}", justify="right")
    table.add_column("change", justify="right")

    def row(label: str, b: float | None, c: float | None, fmt: str) -> None:
        change = "" if b in (None, 0) or c is None else f"{100 * (c / b - 1):+.1f}%"
        show = lambda v: "n/a" if v is None else format(v, fmt)  # noqa: E731
        table.add_row(label, show(b), show(c), change)

    row("energy/request (J)", base.energy_per_request_j, best.energy_per_request_j, ".3f")
    row("mean latency (s)", base.mean_latency_s, best.mean_latency_s, ".3f")
    row("p95 latency (s)", base.p95_latency_s, best.p95_latency_s, ".3f")
    row("EDP (J·s)", base.edp, best.edp, ".3f")
    table.add_row("keeps up", str(base.keeps_up), str(best.keeps_up), "")
    gain = result.edp_gain_pct
    table.caption = f"{len(result.rounds) - 1} search rounds; EDP gain {'n/a' if gain is None else f'{gain:.1f}%'}"
    return table
