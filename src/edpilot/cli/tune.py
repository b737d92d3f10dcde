"""`edpilot tune`: search GPU frequency × batch size for the lowest cost (EDP by default)."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

from edpilot.cli.common import console, err_console, handle_errors, print_json, progress_bar, stop_on_signals
from edpilot.cli.groups import with_groups
from edpilot.cli.options import ConfigFileOpt
from edpilot.cli.results import describe_limits, result_table, say_warnings, warn_short_window
from edpilot.cli.spec import DeviceSpec, EngineSpec, OutputSpec, SearchSpec, WorkloadSpec, open_run
from edpilot.continuous_runner import ContinuousRunner
from edpilot.hardware.base import Device
from edpilot.hardware.guard import guarded
from edpilot.run import start_session
from edpilot.runlog import RoundRecord, RunLog
from edpilot.runner import Runner
from edpilot.sim import SimDevice
from edpilot.tuner import TuneResult, TuningSession, tune


@handle_errors
@with_groups
def tune_command(
    *,
    config_file: ConfigFileOpt = None,
    device: DeviceSpec,
    engine: EngineSpec,
    workload: WorkloadSpec,
    search: SearchSpec,
    out: OutputSpec,
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
    requests = workload.request.open()
    backends = open_run(device, engine, rails=search.rails(device))
    session: TuningSession | None = None
    with stop_on_signals() as stop, RunLog(out.output, overwrite=out.overwrite) as run_log:
        try:
            with guarded(backends.device), contextlib.closing(backends.engine):
                describe_limits(backends.device, quiet=out.json_output)
                traffic = requests.traffic(search.requests_per_round)
                session = start_session(
                    backends,
                    search.request,
                    traffic,
                    run_log=run_log,
                    model=engine.model,
                    workload_name=requests.arrivals,
                    output_tokens=traffic.output_tokens,
                )
                common = dict(
                    device=backends.device,
                    engine=backends.engine,
                    workload=requests,
                    requests_per_round=search.requests_per_round,
                    energy_scope=search.request.energy_scope,
                    seed=engine.seed,
                )
                runner: Runner | ContinuousRunner = (
                    ContinuousRunner(**common)  # type: ignore[arg-type]
                    if search.request.batching == "continuous"
                    else Runner(**common, max_wait_s=search.max_wait_s)  # type: ignore[arg-type]
                )
                with progress_bar("tuning", disable=out.json_output) as progress:
                    task = progress.add_task("baseline", total=search.budget + 1)
                    warned = False

                    def on_round(r: RoundRecord) -> None:
                        nonlocal warned
                        cost = "failed" if r.cost is None else f"cost {r.cost:.4g}"
                        progress.update(task, advance=1, description=f"{r.config} {cost}")
                        warned = warned or warn_short_window(r, backends.device)  # once per run

                    session.on_round = on_round
                    result = tune(runner=runner, session=session, budget=search.budget, governor=governor_baseline)
        except (KeyboardInterrupt, SystemExit) as exc:
            signum = stop.caught(exc)  # from here on, more signals are ignored
            if signum is None:
                raise
            measured = session is not None and bool(session.rounds)
            if measured:
                assert session is not None
                _print_result(session.finish(interrupted=True), json_output=out.json_output, output=out.output)
            err_console.print(stopped_line(signum, backends.device, session, logged=out.output), highlight=False)
            raise typer.Exit(code=128 + signum) from None
    _print_result(result, json_output=out.json_output, output=out.output)


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
