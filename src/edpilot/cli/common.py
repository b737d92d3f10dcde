"""What every command shares: consoles, and turning EdpilotError into one line and exit code 2."""

from __future__ import annotations

import contextlib
import functools
import json
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edpilot.atomic import held
from edpilot.errors import EdpilotError
from edpilot.hardware.guard import exception_for
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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop:
    """Which signal stopped a command; once one has, later signals are ignored while it winds down and exits."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            return
        self._stopping(signum)
        exc = exception_for(signum)
        if not held(exc):  # inside an uninterrupted section it is raised as the section ends
            raise exc

    def _stopping(self, signum: int) -> None:
        """Ignore the stop signals from now on, at the OS level (SIG_IGN outlives the interpreter's own shutdown)."""
        self.signum = signum
        with contextlib.suppress(ValueError):  # not the main thread
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)

    def caught(self, exc: BaseException) -> int | None:
        """The first signal behind `exc` (KeyboardInterrupt or SystemExit(128+N), raised by the device guard or
        here), or None; a second signal raised while the first unwound is chained to it, and the first wins."""
        signum = None
        link: BaseException | None = exc
        while link is not None:
            signum = _signal_of(link) or signum
            link = link.__context__
        if signum is not None and self.signum is None:
            self._stopping(signum)
        return signum


def _signal_of(exc: BaseException) -> int | None:
    if isinstance(exc, KeyboardInterrupt):
        return int(signal.SIGINT)
    if isinstance(exc, SystemExit) and exc.code in (128 + signal.SIGTERM, 128 + signal.SIGHUP):
        return int(exc.code) - 128
    return None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """SIGINT, SIGTERM and SIGHUP stop the command once: a second one never cuts its summary short.

    After a signal, the three stay ignored until the process exits: a late one would otherwise land in the
    interpreter's shutdown ("Exception ignored in threading._shutdown"), or kill it by the default action once
    Python has put the default handlers back.
    """
    stop = Stop()
    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, stop.handle)
    try:
        yield stop
    finally:
        if stop.signum is None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def stops_on_signals(done: str) -> Callable[[F], F]:
    """Make a command that SIGINT/SIGTERM/SIGHUP stop end in one line ('edpilot: stopped by SIGHUP; `done`') and
    exit 128+N, with later signals ignored; `done` says what was put back, and must hold for every stop."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with stop_on_signals() as stop:
                try:
                    return func(*args, **kwargs)
                except (KeyboardInterrupt, SystemExit) as exc:
                    signum = stop.caught(exc)
                    if signum is None:
                        raise
                    with contextlib.suppress(OSError):  # a hung-up terminal cannot be written to
                        err_console.print(f"edpilot: stopped by {signal.Signals(signum).name}; {done}", highlight=False)
                    raise typer.Exit(code=128 + signum) from None

        return wrapper  # type: ignore[return-value]

    return wrap


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
