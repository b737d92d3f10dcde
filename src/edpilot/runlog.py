"""The run log: typed records written as JSON lines as they happen, so a crash keeps every finished round.

Records: `RunHeader` (type `run`: what ran), `RoundRecord` (type `round`: one measurement window) and
`Summary` (type `summary`: the outcome). `tune` and `serve` write them; `report` reads them back with
`read_run_log`, which checks every record through its `from_dict` and says which line and field is wrong.
A torn last line (a crash mid-write) is skipped. Output is strict JSON: no NaN or Infinity.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from edpilot.errors import ConfigError
from edpilot.records import RoundRecord, RunHeader, Summary
from edpilot.textfile import read_lines

__all__ = ["RoundRecord", "RunHeader", "RunLog", "RunLogData", "Summary", "dumps", "read_run_log"]


@dataclass(frozen=True)
class RunLogData:
    """A run log read back: its header (if any), rounds and summary (if the run finished), each checked."""

    header: RunHeader | None
    rounds: list[RoundRecord]
    summary: Summary | None


class RunLog:
    """Appends one JSON object per line, each one write, fsynced; the file appears with the first measured round.

    The header waits in memory until a round is written, so a run that fails before it measured anything (no
    meter, a bad URL) leaves no file behind to block its retry. A line that cannot be written (a full disk, a
    file-size limit) is cut off again, so every line before it stays whole, and the error says how many rounds
    are kept.
    """

    def __init__(self, path: str | os.PathLike[str] | None, *, overwrite: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.overwrite = overwrite
        self.rounds_written = 0
        self._fd: int | None = None
        self._size_bytes = 0
        self._pending: list[bytes] = []
        if self.path is None:
            return
        if self.path.is_dir():
            raise ConfigError(f"--output {self.path} is a directory; give a file name such as {self.path}/run.jsonl")
        if self.path.exists() and not overwrite:
            raise ConfigError(f"--output {self.path} exists; choose another file or pass --overwrite")
        parent = next(p for p in self.path.absolute().parents if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"cannot write the run log {self.path}: {parent} is not a writable folder")

    def write(self, record: RunHeader | RoundRecord | Summary | dict[str, Any]) -> None:
        """Append `record` as one line and make it durable (a header waits for the first round)."""
        if self.path is None:
            return
        data = record if isinstance(record, dict) else record.to_dict()
        line = (dumps(data) + "\n").encode("utf-8")
        if self._fd is None and data.get("type") == "run":
            self._pending.append(line)
            return
        self._append(b"".join([*self._pending, line]))
        self._pending = []
        self.rounds_written += data.get("type") == "round"

    def _append(self, data: bytes) -> None:
        assert self.path is not None
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                exclusive = 0 if self.overwrite else os.O_EXCL
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | exclusive | os.O_CLOEXEC, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size_bytes)  # cut the torn line: what was written stays whole
            kept = f"; the {self.rounds_written} round(s) before it are kept" if self.rounds_written else ""
            raise ConfigError(f"cannot write the run log {self.path}: {exc.strerror or exc}{kept}") from None
        self._size_bytes += len(data)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> RunLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def dumps(data: Any) -> str:
    """Strict JSON: a non-finite number becomes null (it was not measured), never NaN or Infinity."""
    return json.dumps(_finite(data), separators=(", ", ": "), allow_nan=False)


def read_run_log(path: str | os.PathLike[str]) -> RunLogData:
    """Read a run log; a torn last line is dropped, any other bad line raises ConfigError naming it."""
    path = Path(path)
    lines = read_lines(path, what="run log", error=ConfigError)
    header: RunHeader | None = None
    summary: Summary | None = None
    rounds: list[RoundRecord] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        record = _parse_line(line, where=where, last=lineno == len(lines))
        if record is None:
            break
        if record["type"] == "run":
            header = RunHeader.from_dict(record, where=where)
        elif record["type"] == "round":
            rounds.append(RoundRecord.from_dict(record, where=where))
        elif record["type"] == "summary":
            summary = Summary.from_dict(record, where=where)
    if not rounds:
        raise ConfigError(f"{path}: no rounds recorded")
    return RunLogData(header, rounds, summary)


def _parse_line(line: str, *, where: str, last: bool) -> dict[str, Any] | None:
    """One line as a record with a 'type'; None for a torn last line (a crash mid-write)."""
    try:
        record = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        if last:
            return None
        raise ConfigError(f"{where}: not a JSON object") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a run-log record") from None
    except ValueError as exc:  # NaN/Infinity, or beyond json's limits (an integer of more than 4300 digits)
        raise ConfigError(f"{where}: not a run-log record ({str(exc).partition(':')[0]})") from None
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        raise ConfigError(f"{where}: not a run-log record (no 'type')")
    return record


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")
