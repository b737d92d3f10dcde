"""Typed, checked reads of run-log fields, overflow-safe means, and labels of the objectives."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from edpilot.errors import ConfigError

_UNITS = {
    "edp": "EDP (J·s)",
    "ed2p": "ED²P (J·s²)",
    "energy": "energy per request (J)",
    "latency": "mean latency (s)",
}


def objective_label(objective: str | None) -> str:
    """Label of an objective's cost with its unit, e.g. 'EDP (J·s)' or 'weighted cost α=0.5 (baseline = 1)'."""
    if objective is None:
        return "cost"
    name, _, alpha = objective.partition(":")
    if name == "weighted":
        return f"weighted cost α={alpha or '0.5'} (baseline = 1)"
    return _UNITS.get(name, f"{objective} cost")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Fields:
    """Reads one record's fields; a field of the wrong type raises ConfigError naming record and field."""

    def __init__(self, record: dict[str, Any], *, where: str) -> None:
        self.record = record
        self.where = where

    def _fail(self, key: str, want: str, value: Any) -> ConfigError:
        return ConfigError(f"run log {self.where}: '{key}' must be {want}, got {_show(value)}")

    def text(self, key: str) -> str | None:
        """A string field, or None where absent."""
        value = self.record.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def flag(self, key: str, *, default: bool | None = None) -> bool | None:
        """A boolean field, or `default` where absent."""
        value = self.record.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def number(
        self, key: str, *, minimum: float | None = None, integer: bool = False, required: bool = False
    ) -> float | None:
        """A finite number (>= `minimum`, whole if `integer`), or None where absent and not `required`."""
        value = self.record.get(key)
        if value is None:
            if required:
                raise ConfigError(f"run log {self.where}: '{key}' is missing")
            return None
        want = "a whole number" if integer else "a finite number"
        if minimum is not None:
            want += f" >= {minimum:g}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, want, value)
        try:
            number = float(value)
        except OverflowError:
            raise self._fail(key, want, value) from None
        if not math.isfinite(number) or (integer and number != int(number)):
            raise self._fail(key, want, value)
        if minimum is not None and number < minimum:
            raise self._fail(key, want, value)
        return number

    def numbers(self, key: str, *, minimum: float | None = None, integer: bool = False) -> list[float]:
        """A list of finite numbers, or [] where absent."""
        value = self.record.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(key, "a list of numbers", value)
        return [
            Fields({key: v}, where=self.where).number(key, minimum=minimum, integer=integer, required=True)
            for v in value
        ]  # type: ignore[misc]


def mean_of(values: Sequence[float | None]) -> float | None:
    """Mean of finite values without overflow; None if any value is missing or there are none."""
    if not values or any(v is None for v in values):
        return None
    n = len(values)
    return sum(v / n for v in values)  # type: ignore[operator]


def finite_or_none(data: Any) -> Any:
    """`data` with every non-finite float replaced by None, so that it serialises as strict JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_or_none(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(v) for v in data]
    return data
