"""`edpilot tune`: search GPU frequency × batch size for the lowest cost (EDP by default)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from edpilot.backends import open_backends
from edpilot.cli.common import console, err_console, handle_errors, print_json, progress_bar, stop_on_signals
from edpilot.cli.options import (
    ArrivalRateOpt,
    ArrivalsOpt,
    BaselineOpt,
    BatchesOpt,
    BatchingOpt,
    CompileOpt,
    ConfigFileOpt,
    DeviceOpt,
    DryRunOpt,
    DtypeOpt,
    EnergyScopeOpt,
    EngineOpt,
    FixedLengthOpt,
    FreqsOpt,
    GpuLayersOpt,
    JsonOpt,
    MaxWaitOpt,
    ModelNameOpt,
    ModelOpt,
    ObjectiveOpt,
    OutputTokensOpt,
    OverwriteOpt,
    PaperOpt,
    PowerCapOpt,
    PriorOpt,
    PromptTokensOpt,
    RailsOpt,
    ReadOnlyOpt,
    RequestTimeoutOpt,
    SeedOpt,
    SloOpt,
    SloTtftOpt,
    StrategyOpt,
    SysfsRootOpt,
    ThreadsOpt,
    TorchDeviceOpt,
    TraceOpt,
    engine_options,
    split_list,
)
from edpilot.cli.results import describe_limits, result_table, say_warnings, warn_short_window
from edpilot.continuous_runner import ContinuousRunner
from edpilot.engine import DEFAULT_REQUEST_TIMEOUT_S
from edpilot.hardware.base import Device
from edpilot.hardware.guard import guarded
from edpilot.run import SearchRequest, WorkloadRequest, resolve_batching, resolve_paper, start_session
from edpilot.runlog import RoundRecord, RunLog
from edpilot.runner import Runner
from edpilot.search import DEFAULT_STRATEGY
from edpilot.sim import SimDevice
from edpilot.tuner import TuneResult, TuningSession, tune


@handle_errors
def tune_command(
    config_file: ConfigFileOpt = None,
    device: DeviceOpt = "sim",
    profile: Annotated[
        Path | None, typer.Option(help="Replay this profile table (CSV) instead of the analytic simulator.")
    ] = None,
    model: ModelOpt = "llama-3.2-1b",
    engine: EngineOpt = "sim",
    arrival_rate: ArrivalRateOpt = 1.0,
    arrivals: ArrivalsOpt = "uniform",
    trace: TraceOpt = None,
    output_tokens: OutputTokensOpt = 70,
    prompt_tokens: PromptTokensOpt = None,
    freqs: FreqsOpt = None,
    batches: BatchesOpt = None,
    baseline: BaselineOpt = None,
    strategy: StrategyOpt = DEFAULT_STRATEGY,
    budget: Annotated[int, typer.Option(help="Search rounds after the baseline round.")] = 30,
    seed: SeedOpt = 0,
    objective: ObjectiveOpt = None,
    energy_scope: EnergyScopeOpt = None,
    paper: PaperOpt = False,
    slo_p95: SloOpt = None,
    slo_ttft_p95: SloTtftOpt = None,
    power_cap: PowerCapOpt = None,
    batching: BatchingOpt = None,
    requests_per_round: Annotated[
        int, typer.Option(help="Requests per measurement window (rounded up to whole batches, at least 2).")
    ] = 32,
    max_wait: MaxWaitOpt = None,
    prior: PriorOpt = None,
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
    output: Annotated[Path | None, typer.Option(help="Write the run log (JSONL), round by round.")] = None,
    overwrite: OverwriteOpt = False,
    json_output: JsonOpt = False,
    governor_baseline: Annotated[
        bool,
        typer.Option(
            "--governor-baseline/--no-governor-baseline",
            help="First serve one window at the baseline's batch size with the clock left to the board's stock "
            "governor, and quote the gain against it too (devices whose clock edpilot may set).",
        ),
    ] = True,
) -> None:
    """Find the GPU frequency and batch size with the lowest energy-delay product (or another --objective).

    With no options: the simulated Jetson AGX Orin 32GB (MAXN), Llama-3.2-1B, a request every second,
    70 output tokens, 7 GPU levels x batch 4..28, EDP over the board's total energy. --paper switches to
    the paper's objective (weighted:0.5 of energy and latency) on GPU energy while batches run.
    """
    objective_name, scope, rail_list = resolve_paper(
        paper=paper, objective=objective, energy_scope=energy_scope, rails=split_list(rails)
    )
    wanted = WorkloadRequest(
        arrivals=arrivals,
        arrival_rate_per_s=arrival_rate,
        output_tokens=output_tokens,
        prompt_tokens=prompt_tokens,
        trace=trace,
    )
    search = SearchRequest(
        freqs=freqs,
        batches=batches,
        baseline=baseline,
        strategy=strategy,
        budget=budget,
        objective=objective_name,
        energy_scope=scope,
        requests_per_round=requests_per_round,
        max_wait_s=max_wait,
        slo_p95_s=slo_p95,
        slo_ttft_p95_s=slo_ttft_p95,
        power_cap_w=power_cap,
        seed=seed,
        batching=resolve_batching(batching, paper=paper),
        prior=prior,
    )
    workload = wanted.open()
    backends = open_backends(
        device=device,
        engine=engine,
        model=model,
        profile=str(profile) if profile else None,
        seed=seed,
        sysfs_root=sysfs_root,
        rails=rail_list,
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
    session: TuningSession | None = None
    with stop_on_signals() as stop, RunLog(output, overwrite=overwrite) as run_log:
        try:
            with guarded(backends.device):
                describe_limits(backends.device, quiet=json_output)
                traffic = workload.traffic(requests_per_round)
                session = start_session(
                    backends,
                    search,
                    traffic,
                    run_log=run_log,
                    model=model,
                    workload_name=workload.arrivals,
                    output_tokens=traffic.output_tokens,
                )
                common = dict(
                    device=backends.device,
                    engine=backends.engine,
                    workload=workload,
                    requests_per_round=requests_per_round,
                    energy_scope=search.energy_scope,
                    seed=seed,
                )
                runner: Runner | ContinuousRunner = (
                    ContinuousRunner(**common)  # type: ignore[arg-type]
                    if search.batching == "continuous"
                    else Runner(**common, max_wait_s=max_wait)  # type: ignore[arg-type]
                )
                with progress_bar("tuning", disable=json_output) as progress:
                    task = progress.add_task("baseline", total=budget + 1)
                    warned = False

                    def on_round(r: RoundRecord) -> None:
                        nonlocal warned
                        cost = "failed" if r.cost is None else f"cost {r.cost:.4g}"
                        progress.update(task, advance=1, description=f"{r.config} {cost}")
                        warned = warned or warn_short_window(r, backends.device)  # once per run

                    session.on_round = on_round
                    result = tune(runner=runner, session=session, budget=budget, governor=governor_baseline)
        except (KeyboardInterrupt, SystemExit) as exc:
            signum = stop.caught(exc)  # from here on, more signals are ignored
            if signum is None:
                raise
            measured = session is not None and bool(session.rounds)
            if measured:
                assert session is not None
                _print_result(session.finish(interrupted=True), json_output=json_output, output=output)
            err_console.print(stopped_line(signum, backends.device, session, logged=output), highlight=False)
            raise typer.Exit(code=128 + signum) from None
    _print_result(result, json_output=json_output, output=output)


def _print_result(result: TuneResult, *, json_output: bool, output: Path | None) -> None:
    say_warnings(result)
    if json_output:
        print_json(result.summary.to_dict())
        return
    console.print(result_table(result))
    if output:
        console.print(f"run log: {output}  (plots: edpilot report {output} --out DIR)")


def stopped_line(signum: int, device: Device, session: TuningSession | None, *, logged: Path | None) -> str:
    """What a signal stopped and what was put back, in one line: never a restore that did not happen."""
    rounds = len(session.rounds) if session is not None else 0
    done = f"after {rounds} measured round(s)" if rounds else "before the first round was measured"
    if rounds and logged is not None:
        done += f", summary written to {logged}"
    caps = device.capabilities
    if isinstance(device, SimDevice):
        back = f"nothing to restore: {device.name} is simulated, no real clock was changed"
    elif not caps.can_set_clocks:
        back = f"no clock was changed ({caps.read_only_reason}), so none needed restoring"
    else:
        back = f"clocks restored: {device.name} is back at the clock settings saved before the run"
    return f"edpilot: stopped by {signal.Signals(signum).name} {done}; {back}"
