"""The run log: JSON lines written as they happen, so a crash keeps every finished round.

Record types: `run` (header), `round` (one measurement window), `summary` (the outcome). A torn last
line (a crash mid-write) is skipped when reading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from edpilot.errors import ConfigError
from edpilot.textfile import read_lines


class RunLog:
    """Appends one JSON object per line; each line is one write, flushed and fsynced."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._fh = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` as one line and make it durable."""
        if self._fh is None:
            return
        self._fh.write(json.dumps(record, separators=(", ", ": ")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_run_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a run log; a torn last line is dropped, any other bad line raises ConfigError."""
    path = Path(path)
    lines = read_lines(path, what="run log", error=ConfigError)
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if lineno == len(lines):
                break
            raise ConfigError(f"{path}:{lineno}: not a JSON object") from None
        if not isinstance(record, dict) or "type" not in record:
            raise ConfigError(f"{path}:{lineno}: not a run-log record (no 'type')")
        records.append(record)
    if not any(r["type"] == "round" for r in records):
        raise ConfigError(f"{path}: no rounds recorded")
    return records
