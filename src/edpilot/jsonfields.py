"""Checked reads of the fields of a JSON object read from a file: type, finiteness, range, one clear line.

Each reader raises ValueError naming the field ("'batch_size' must be a whole number >= 1, got 2.5");
`checking(where, what)` turns that into a ConfigError naming the record ("run.jsonl:3: not a valid round
record: ..."). Values are shown short: a list or object by its kind, text cut at 40 characters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from edpilot.errors import ConfigError

Record = dict[str, Any]


@contextmanager
def checking(where: str, what: str) -> Iterator[None]:
    """Raise any ValueError, TypeError or ConfigError of the block as 'WHERE: not a valid WHAT: why'."""
    try:
        yield
    except (ValueError, TypeError, ConfigError) as exc:
        raise ConfigError(f"{where}: not a valid {what}: {exc}") from None


def show(value: Any) -> str:
    """A value as an error message shows it: short, and never the repr of a whole nested structure."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a JSON object"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def present(d: Record, name: str) -> Any:
    """The field's value; ValueError when it is missing or null."""
    if d.get(name) is None:
        raise ValueError(f"'{name}' is missing")
    return d[name]


def number(d: Record, name: str, *, minimum: float | None = 0.0, positive: bool = False) -> float:
    """A finite number, >= `minimum` (None: any sign), > 0 if `positive`; an integer too large for a float fails."""
    value = present(d, name)
    want = "a finite number" + (" > 0" if positive else "" if minimum is None else f" >= {minimum:g}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{name}' must be {want}, got {show(value)}")
    finite = math.isfinite(value) if isinstance(value, float) else abs(value) < 2**1023
    if not finite or (minimum is not None and value < minimum) or (positive and value <= 0):
        raise ValueError(f"'{name}' must be {want}, got {show(value)}")
    return float(value)


def whole(d: Record, name: str, *, minimum: int = 0) -> int:
    """A whole number >= `minimum` (not a bool, not 4.0)."""
    value = present(d, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"'{name}' must be a whole number >= {minimum}, got {show(value)}")
    return value


def text(d: Record, name: str) -> str:
    """A string."""
    value = present(d, name)
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be text, got {show(value)}")
    return value


def flag(d: Record, name: str) -> bool:
    """true or false."""
    value = present(d, name)
    if not isinstance(value, bool):
        raise ValueError(f"'{name}' must be true or false, got {show(value)}")
    return value


def obj(d: Record, name: str) -> Record:
    """A JSON object."""
    value = present(d, name)
    if not isinstance(value, dict):
        raise ValueError(f"'{name}' must be a JSON object, got {show(value)}")
    return value


def items(d: Record, name: str, read: Callable[[Record, str], Any]) -> list[Any]:
    """A list whose every item passes `read` (called as read({name: item}, name))."""
    value = present(d, name)
    if not isinstance(value, list):
        raise ValueError(f"'{name}' must be a list, got {show(value)}")
    return [read({name: v}, name) for v in value]


def optional(read: Callable[..., Any], d: Record, name: str, **kwargs: Any) -> Any:
    """`read(d, name, **kwargs)`, or None where the field is missing or null."""
    return None if d.get(name) is None else read(d, name, **kwargs)
