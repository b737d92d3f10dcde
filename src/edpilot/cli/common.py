"""What every command shares: consoles, and turning EdpilotError into one line and exit code 2."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edpilot.errors import EdpilotError
from edpilot.runlog import dumps

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    """Print `edpilot: error: message` on stderr and return the Exit(2) to raise."""
    err_console.print(f"[bold red]edpilot: error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def handle_errors(func: F) -> F:
    """Run a command; an EdpilotError becomes one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EdpilotError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            err_console.print("edpilot: interrupted")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: object) -> None:
    """Machine-readable output on stdout: strict JSON (a value that was not measured is null, never NaN)."""
    typer.echo(json.dumps(json.loads(dumps(data)), indent=2, allow_nan=False))


def progress_bar(label: str, *, disable: bool) -> Progress:
    """A progress bar on stderr: label, bar, done/total, the latest step, elapsed time."""
    return Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=disable,
        transient=True,
    )
