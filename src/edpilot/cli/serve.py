"""`edpilot serve`: an OpenAI-compatible endpoint that batches live requests at a tuned (or tuning) config."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from edpilot.cli.common import err_console, handle_errors
from edpilot.cli.groups import Defaults, Without, with_groups
from edpilot.cli.options import ConfigFileOpt
from edpilot.cli.spec import DeviceSpec, EngineSpec, OutputSpec, SearchSpec, open_run
from edpilot.errors import ConfigError
from edpilot.hardware.base import Device
from edpilot.hardware.guard import RestoreFailed, guarded
from edpilot.run import start_session
from edpilot.runlog import RunLog
from edpilot.serving.traffic import Traffic


@handle_errors
@with_groups
def serve_command(
    *,
    config_file: ConfigFileOpt = None,
    device: DeviceSpec,
    engine: Annotated[EngineSpec, Without("fixed_output_length", "model_name")],  # model_name: --upstream-model
    tune: Annotated[str | None, typer.Option(help="online: tune on live traffic (default without a config).")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Serve the config a tuning run chose (its run log's summary).")
    ] = None,
    freq: Annotated[float | None, typer.Option(help="Serve at this GPU frequency (MHz); needs --batch.")] = None,
    batch: Annotated[int | None, typer.Option(help="Serve at this static batch size.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; other than loopback needs --api-key or --insecure.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port (0: any free one; the address is printed).")] = 8000,
    api_key: Annotated[
        str | None, typer.Option(envvar="EDPILOT_API_KEY", help="Require 'Authorization: Bearer KEY'.")
    ] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback bind without a key.")] = False,
    max_queue: Annotated[int, typer.Option(help="Queued requests before answering 429.")] = 1024,
    max_connections: Annotated[
        int | None,
        typer.Option(help="Open connections at most (default 2048, fewer to fit ulimit -n); more evict the slowest."),
    ] = None,
    read_timeout_s: Annotated[
        float,
        typer.Option("--read-timeout-s", help="A client must send a whole request (headers and body) within this (s)."),
    ] = 30.0,
    sim_speed: Annotated[
        float, typer.Option(help="--device sim: run the simulated board this many times faster.")
    ] = 1.0,
    model_name: Annotated[str | None, typer.Option(help="Model id clients use (default: the engine's model).")] = None,
    upstream_model: Annotated[
        str | None,
        typer.Option(help="openai engine (gateway): model name sent upstream (default: the first the server lists)."),
    ] = None,
    yield_cpu: Annotated[
        bool,
        typer.Option(
            "--yield-cpu/--no-yield-cpu",
            help="openai engine (gateway) in front of a server on this host: relay at idle CPU priority while one "
            "request streams alone, so the model's threads keep the cores (Linux; needs root or CAP_SYS_NICE).",
        ),
    ] = True,
    search: Annotated[SearchSpec, Defaults(max_wait_s=5.0)],  # a live server flushes a partial batch by default
    out: Annotated[OutputSpec, Without("json_output")],
) -> None:
    """Serve /v1/completions and /v1/chat/completions, batching requests at the tuned clock levels and batch size.

    Online tuning (the default) searches on live traffic and re-plans when it drifts; --config serves what
    `edpilot tune --output run.jsonl` chose; --freq/--batch serve one config. Requests join the running batch at
    the next decode step (continuous batching; --batch is then the most sequences at once) unless --batching static
    or --paper. Stop with Ctrl-C or SIGTERM: queued requests get an error, the running batch finishes, the device
    is restored.
    """
    from edpilot.server.launch import ServeSettings, run_server, serving_sim_speed
    from edpilot.server.plan import plan_search, resolve_plan

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    batching = search.request.batching if search.batching or search.paper else "continuous"  # serve's default
    settings = ServeSettings(
        batching=batching,
        host=host,
        port=port,
        api_key=api_key,
        insecure=insecure,
        max_queue=max_queue,
        max_wait_s=search.max_wait_s,
        sim_speed=sim_speed,
        budget=search.budget,
        model_name=model_name,
        max_connections=max_connections,
        read_timeout_s=read_timeout_s,
        yield_cpu=yield_cpu,
    )
    plan = resolve_plan(tune=tune, config=config, freq_mhz=freq, batch_size=batch)
    if not plan.online and (
        search.freqs or search.emcs or search.phase_clocks or search.batches or search.baseline or search.prior
    ):
        raise ConfigError(
            "--freqs/--emcs/--phase-clocks/--batches/--baseline/--prior shape online tuning; "
            "a fixed config takes none of them"
        )
    backends = open_run(
        device,
        engine,
        rails=search.rails(device),
        engine_options=replace(engine.options, fixed_output_length=False, model_name=upstream_model, filler_text=True),
        sim_speed=serving_sim_speed(device.device, sim_speed),
    )
    started: list[str] = []
    with (
        _stop_line(backends.device, started),
        guarded(backends.device),
        contextlib.closing(backends.engine),
        RunLog(out.output, overwrite=out.overwrite) as run_log,
    ):
        try:
            request = plan_search(plan, replace(search.request, batching=batching), backends.device)
            # saturated until live arrivals tell
            traffic = Traffic(arrivals="saturated", requests_per_round=search.requests_per_round)
            session = start_session(
                backends,
                request,
                traffic,
                run_log=run_log,
                model=engine.model,
                mode="serve",
                workload_name="live",
                output_tokens=None,
            )

            def ready(url: str) -> None:
                started.append(url)
                what = "tuning online" if plan.online else f"at {session.baseline} ({plan.source})"
                line = f"edpilot: serving on {url} — {backends.device.name}, {what}, {batching} batching"
                err_console.print(line, highlight=False)

            run_server(
                backends,
                session,
                settings=settings,
                online=plan.online,
                energy_scope=request.energy_scope,  # type: ignore[arg-type]
                model=engine.model,
                on_ready=ready,
            )
        finally:
            backends.engine.close()


@contextlib.contextmanager
def _stop_line(device: Device, started: list[str]) -> Iterator[None]:
    """Once a server that started has stopped (a signal, a failure), one line says so and what became of the clocks."""
    try:
        yield
    except RestoreFailed:
        if started:
            err_console.print("edpilot: stopped; clocks NOT restored (their saved state is kept for `edpilot restore`)")
        raise
    except BaseException as exc:
        if started:
            err_console.print(f"edpilot: stopped{_why(exc)}; {_clocks(device)}", highlight=False)
            if isinstance(exc, KeyboardInterrupt):  # said: exit 130 without a second "interrupted" line
                raise typer.Exit(code=130) from None
        raise
    if started:
        err_console.print(f"edpilot: stopped; {_clocks(device)}", highlight=False)


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return " (SIGINT)"
    if isinstance(exc, SystemExit) and isinstance(exc.code, int) and exc.code > 128:
        with contextlib.suppress(ValueError):
            return f" ({signal.Signals(exc.code - 128).name})"
    return ""


def _clocks(device: Device) -> str:
    caps = device.capabilities
    if caps.can_set_clocks:
        return "clocks restored"
    return f"clocks untouched ({caps.read_only_reason})"
