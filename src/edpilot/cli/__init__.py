"""The `edpilot` command line: tune, profile, serve, report, devices, top, apply, restore, bench."""

from __future__ import annotations

from typing import Annotated

import typer

from edpilot import __version__
from edpilot.cli.bench import bench_command
from edpilot.cli.common import err_console
from edpilot.cli.devices import apply_command, devices_command, restore_command
from edpilot.cli.profile import profile_command
from edpilot.cli.report import report_command
from edpilot.cli.serve import serve_command
from edpilot.cli.top import top_command
from edpilot.cli.tune import tune_command

app = typer.Typer(
    name="edpilot",
    help="Energy-aware LLM inference on edge GPUs: find and serve the GPU frequency and batch size "
    "with the lowest energy-delay product. Start with `edpilot tune` (runs on a simulated Jetson AGX Orin).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("tune")(tune_command)
app.command("profile")(profile_command)
app.command("report")(report_command)
app.command("devices")(devices_command)
app.command("top")(top_command)
app.command("apply")(apply_command)
app.command("restore")(restore_command)
app.command("bench")(bench_command)
app.command("serve")(serve_command)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"edpilot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print edpilot's version and exit."),
    ] = False,
) -> None:
    """Options before the command: `--version` (the app's help above is what `edpilot --help` shows)."""


def main() -> None:
    """Console-script entry point; Ctrl-C anywhere (start-up included) is one line and exit 130."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("edpilot: interrupted")
        raise SystemExit(130) from None
