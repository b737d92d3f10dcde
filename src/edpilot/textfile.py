"""Reading the text files users hand edpilot (profiles, traces, run logs) with errors that name them."""

from __future__ import annotations

import os
from pathlib import Path

from edpilot.errors import EdpilotError


def read_lines(path: str | os.PathLike[str], *, what: str, error: type[EdpilotError]) -> list[str]:
    """Lines of a UTF-8 file (BOM accepted); `error` says '{what} PATH does not exist' or why it cannot be read."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {path}: {exc}") from None
