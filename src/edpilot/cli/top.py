"""`edpilot top`: watch a device (and a running server) live, or log the same readings to CSV on a headless board.

It opens the device read-only and only reads: no clock, governor or file changes. A value that could not be
read is an empty cell (CSV) or a dash (screen) in that reading — never the last value held over.
"""

from __future__ import annotations

import contextlib
import csv
import math
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import IO, Annotated

import httpx
import typer
from rich.live import Live
from rich.table import Table

import edpilot.sim  # noqa: F401 - registers the sim device
from edpilot.cli.common import console, err_console, handle_errors
from edpilot.cli.options import SysfsRootOpt
from edpilot.clock import WallClock
from edpilot.errors import ConfigError
from edpilot.hardware import Device, DeviceOptions, open_device
from edpilot.watch import SERVER_METRICS, DeviceReader, Reading, ServerStatus, read_server

DEVICE_COLUMNS = ("governor", "gpu_load_pct", "power_w", "energy_j")  # after the time and the device's knobs
KNOB_LABELS = {"gpu_mhz": "GPU clock", "emc_mhz": "memory clock", "mem_mhz": "memory clock"}
NO_DEVICE = "none"


class _Stop(Exception):
    """Ctrl-C, SIGTERM or SIGHUP asked `top` to end."""


@dataclass
class _Done:
    """Readings written or shown so far (what the last line reports, even after Ctrl-C)."""

    readings: int = 0


@handle_errors
def top_command(
    device: Annotated[
        str,
        typer.Option(
            help="Device to watch: jetson, nvml[:INDEX], cpu, sim[:BOARD]; 'none' with --url watches only the server."
        ),
    ] = "jetson",
    url: Annotated[
        str | None, typer.Option(help="Also show a running `edpilot serve`: its round, config, queue and EDP.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="EDPILOT_API_KEY", help="The server's API key, if it needs one.")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between readings.")] = 1.0,
    log: Annotated[
        Path | None, typer.Option(help="Write the readings to this CSV file instead of the screen (headless boards).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --log file.")] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many readings.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    sysfs_root: SysfsRootOpt = None,
) -> None:
    """Watch GPU and memory clocks, governor, per-rail power and the energy counter live; never changes anything.

    --log FILE.csv --interval S writes the same readings without the screen, one flushed line each.
    Ctrl-C or SIGTERM ends it with one line; --count or --duration ends it by itself.
    """
    if not (math.isfinite(interval) and interval > 0):
        raise ConfigError(f"--interval must be a finite number of seconds > 0, got {interval}")
    if count is not None and count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ConfigError(f"--duration must be a finite number of seconds > 0, got {duration}")
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"--url needs an http:// or https:// address, e.g. http://127.0.0.1:8000, got {url!r}")
    if device == NO_DEVICE and url is None:
        raise ConfigError("--device none watches only a server: give its --url")
    if log is not None and log.exists() and not overwrite:
        raise ConfigError(f"--log {log} exists; choose another file or pass --overwrite")
    opened = None if device == NO_DEVICE else _open_read_only(device, sysfs_root)
    done = _Done()
    try:
        reader = DeviceReader(opened) if opened is not None else None
        with _Stopper().installed() as stopper, httpx.Client() as client:
            readings = _readings(reader, url, api_key, client, interval=interval, count=count, duration=duration)
            if log is not None:
                _write_csv(log, reader, url, readings, done, stopper)
            else:
                _show_live(opened, readings, done)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        if opened is not None:
            opened.close()
    where = f"; log: {log}" if log else ""
    err_console.print(f"edpilot top: stopped after {done.readings} readings{where}")


def _open_read_only(spec: str, sysfs_root: str | None) -> Device:
    """The device with every clock write refused; the simulated board runs on the wall clock, as a real one does."""
    simulated = spec.partition(":")[0] == "sim"
    options = DeviceOptions(sysfs_root=sysfs_root, read_only=True, sim_speed=1.0 if simulated else None)
    return open_device(spec, options)


Sample = tuple[Reading | None, ServerStatus | None]


def _readings(
    reader: DeviceReader | None,
    url: str | None,
    api_key: str | None,
    client: httpx.Client,
    *,
    interval: float,
    count: int | None,
    duration: float | None,
) -> Iterator[Sample]:
    clock = WallClock()
    start_s = clock.now_s()
    taken = 0
    while count is None or taken < count:
        due_s = start_s + taken * interval
        if duration is not None and due_s - start_s > duration:
            return
        clock.sleep_until(due_s)
        reading = reader.read() if reader is not None else None
        status = read_server(url, api_key=api_key, client=client) if url else None
        taken += 1
        yield reading, status


def _columns(reader: DeviceReader | None, url: str | None) -> list[str]:
    columns = ["time"]
    if reader is not None:
        columns += [*reader.knobs, *DEVICE_COLUMNS, *(f"{rail}_w" for rail in reader.rails)]
    if url:
        columns += [f"server_{name}" for name in SERVER_METRICS]
    return columns


def _row(reading: Reading | None, status: ServerStatus | None, reader: DeviceReader | None) -> list[str]:
    row = [datetime.now(timezone.utc).isoformat(timespec="milliseconds")]
    if reader is not None:
        assert reading is not None
        values: list[float | str | None] = [reading.knobs.get(name) for name in reader.knobs]
        values += [reading.governor, reading.gpu_load_pct, reading.power_w, reading.energy_j]
        row += [_cell(v) for v in values] + [_cell(reading.rails_w.get(rail)) for rail in reader.rails]
    if status is not None:
        row += [_cell(status.values.get(name)) for name in SERVER_METRICS]
    return row


def _cell(value: float | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else format(value, ".10g")


def _write_csv(
    path: Path,
    reader: DeviceReader | None,
    url: str | None,
    readings: Iterator[Sample],
    done: _Done,
    stopper: _Stopper,
) -> None:
    """One flushed line per reading."""
    with _open_log(path) as fh:
        writer = csv.writer(fh)
        try:
            writer.writerow(_columns(reader, url))
            fh.flush()
        except OSError as exc:
            raise ConfigError(f"cannot write --log {path}: {exc.strerror or exc}") from None
        for reading, status in readings:
            with stopper.hold():
                try:
                    writer.writerow(_row(reading, status, reader))
                    fh.flush()
                except OSError as exc:
                    raise ConfigError(f"cannot write --log {path}: {exc.strerror or exc}") from None
                done.readings += 1


@contextlib.contextmanager
def _open_log(path: Path) -> Iterator[IO[str]]:
    try:
        fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot write --log {path}: {exc.strerror or exc}") from None
    failed = False
    try:
        yield fh
    except BaseException:
        failed = True
        raise
    finally:
        try:
            fh.close()
        except OSError as exc:  # a full disk fails the last flush too: said once, by whoever saw it first
            if not failed:
                raise ConfigError(f"cannot write --log {path}: {exc.strerror or exc}") from None


def _show_live(device: Device | None, readings: Iterator[Sample], done: _Done) -> None:
    with Live(console=console, auto_refresh=False, transient=False) as live:
        for reading, status in readings:
            done.readings += 1
            table = _table(device, reading, status)
            table.caption = f"reading {done.readings} at {datetime.now().strftime('%H:%M:%S')}; Ctrl-C ends"
            live.update(table, refresh=True)
    if not console.is_terminal:
        console.line()  # Live leaves its last frame without a line end when it is not on a terminal


def _table(device: Device | None, reading: Reading | None, status: ServerStatus | None) -> Table:
    table = Table(title=f"edpilot top — {device.name if device else 'server'}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    if reading is not None:
        for name, level in reading.knobs.items():
            table.add_row(KNOB_LABELS.get(name, name), _show(level, "MHz"))
        table.add_row("governor", _show(reading.governor))
        table.add_row("GPU load", _show(reading.gpu_load_pct, "%"))
        table.add_row("power (mean)", _show(reading.power_w, "W"))
        table.add_row("energy counter", _show(reading.energy_j, "J"))
        for rail, power_w in reading.rails_w.items():
            table.add_row(f"  {rail}", _show(power_w, "W"))
    if status is not None:
        if status.error:
            table.add_row("server", f"[red]{status.error}[/]")
        v = status.values
        table.add_row("server round", _show(v.get("round")))
        table.add_row("server config", f"{_show(v.get('freq_mhz'), 'MHz')}, batch {_show(v.get('batch_size'))}")
        table.add_row("server queue", _show(v.get("queue")))
        table.add_row("server EDP", _show(v.get("edp_js"), "J·s"))
        table.add_row("arrival rate", _show(v.get("arrival_rate_per_s"), "req/s"))
    return table


def _show(value: float | str | None, unit: str = "") -> str:
    if value is None:
        return "[dim]—[/]"
    text = value if isinstance(value, str) else f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{text} {unit}".rstrip()


class _Stopper:
    """Ctrl-C, SIGTERM and SIGHUP end `top` with one line; one arriving while a row is written waits for its end."""

    def __init__(self) -> None:
        self.holding = False
        self.pending = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.holding:
            self.pending = True
            return
        raise _Stop

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """A row and its count are written whole, or not at all."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            raise _Stop

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Stopper]:
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError):  # not the main thread
                previous[sig] = signal.signal(sig, self.handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
