"""The run log: typed records written as JSON lines as they happen, so a crash keeps every finished round.

Records: `RunHeader` (type `run`: what ran), `RoundRecord` (type `round`: one measurement window) and
`Summary` (type `summary`: the outcome). `tune` and `serve` write them; `report` reads them back with
`read_run_log`, which checks every record through its `from_dict` and says which line and field is wrong.
A torn last line (a crash mid-write) is skipped. Output is strict JSON: no NaN or Infinity.
"""

from __future__ import annotations

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
    """Appends one JSON object per line; each line is one write, flushed and fsynced."""

    def __init__(self, path: str | os.PathLike[str] | None, *, overwrite: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self._fh = None
        if self.path is None:
            return
        if self.path.is_dir():
            raise ConfigError(f"--output {self.path} is a directory; give a file name such as {self.path}/run.jsonl")
        if self.path.exists() and not overwrite:
            raise ConfigError(f"--output {self.path} exists; choose another file or pass --overwrite")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise ConfigError(f"cannot write the run log {self.path}: {exc.strerror or exc}") from None

    def write(self, record: RunHeader | RoundRecord | Summary | dict[str, Any]) -> None:
        """Append `record` as one line and make it durable."""
        if self._fh is None:
            return
        data = record if isinstance(record, dict) else record.to_dict()
        try:
            self._fh.write(dumps(data) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise ConfigError(f"cannot write the run log {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        """Close the file (idempotent); ConfigError when what was left in its buffer cannot be written (a full disk)."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError as exc:
                raise ConfigError(f"cannot write the run log {self.path}: {exc.strerror or exc}") from None

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
