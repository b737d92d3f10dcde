"""The run log's records, typed: `RunHeader` (what ran), `RoundRecord` (one window), `Summary` (the outcome).

`tune` and `serve` write them, `report` reads them; `RoundRecord.from_dict` checks every field's type.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edpilot.errors import ConfigError
from edpilot.objective import Observation
from edpilot.space import Config


@dataclass(frozen=True)
class RunHeader:
    """What ran: device, engine and model, traffic, objective, strategy and grid."""

    version: str
    device: dict[str, Any]
    engine: dict[str, Any]
    model: str | None
    arrivals: str
    arrival_rate_per_s: float | None
    output_tokens: float | None
    objective: str
    energy_scope: str
    strategy: str
    budget: int | None
    seed: int
    freqs_mhz: list[float | None]
    batch_sizes: list[int]
    baseline: dict[str, Any]
    mode: str = "tune"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The `run` record."""
        return {"type": "run", **asdict(self)}


@dataclass(frozen=True)
class RoundRecord:
    """One measurement window: where (config), what was observed, and its cost (None: the window failed)."""

    round: int
    role: str
    config: Config
    obs: Observation
    cost: float | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `round` record: config and observation fields flattened, EDP included."""
        record = {
            "type": "round",
            "round": self.round,
            "role": self.role,
            "freq_mhz": self.config.freq_mhz,
            "batch_size": self.config.batch_size,
            **self.obs.to_dict(),
            "cost": self.cost,
        }
        if self.note:
            record["note"] = self.note
        return record

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str) -> RoundRecord:
        """Parse a `round` record, checking every field's type; ConfigError names `where`."""
        obs_fields = {f.name: f for f in fields(Observation)}
        values: dict[str, Any] = {}
        for name in obs_fields:
            if name in d:
                values[name] = d[name]
        try:
            config = Config(_opt_num(d.get("freq_mhz"), "freq_mhz"), _int(d.get("batch_size"), "batch_size"))
            for name in ("requests", "failed_requests"):
                if name in values:
                    values[name] = _int(values[name], name)
            for name in ("mean_latency_s", "p95_latency_s", "mean_batch_s", "window_s"):
                values[name] = _num(values.get(name), name)
            for name in ("energy_per_request_j", "mean_ttft_s", "power_w", "energy_per_batch_j", "actual_freq_mhz"):
                values[name] = _opt_num(values.get(name), name)
            if "meter_updates" in values:
                values["meter_updates"] = _opt_num(values["meter_updates"], "meter_updates")
            if values.get("first_error") is not None and not isinstance(values["first_error"], str):
                raise ValueError("first_error must be text")
            if not isinstance(values.get("keeps_up"), bool):
                raise ValueError("keeps_up must be true or false")
            values["requests"] = _int(values.get("requests"), "requests")
            obs = Observation(**values)
            return cls(
                round=_int(d.get("round"), "round"),
                role=str(d.get("role", "search")),
                config=config,
                obs=obs,
                cost=_opt_num(d.get("cost"), "cost"),
                note=d.get("note") if isinstance(d.get("note"), str) else None,
            )
        except (ValueError, TypeError, ConfigError) as exc:
            raise ConfigError(f"{where}: not a valid round record ({exc})") from None


@dataclass(frozen=True)
class Summary:
    """The outcome: the chosen config and the baseline, their costs under the objective and their EDP."""

    objective: str
    best: dict[str, Any]
    baseline: dict[str, Any]
    rounds: int
    failed_rounds: int

    @property
    def edp_gain_pct(self) -> float | None:
        """How much lower the chosen config's EDP is than the baseline's, in percent."""
        return _gain_pct(self.best.get("edp"), self.baseline.get("edp"))

    @property
    def cost_gain_pct(self) -> float | None:
        """How much lower the chosen config's cost (the optimised objective) is than the baseline's, in percent."""
        return _gain_pct(self.best.get("cost"), self.baseline.get("cost"))

    def to_dict(self) -> dict[str, Any]:
        """The `summary` record."""
        return {
            "type": "summary",
            "objective": self.objective,
            "best": self.best,
            "baseline": self.baseline,
            "cost_best": self.best.get("cost"),
            "cost_baseline": self.baseline.get("cost"),
            "cost_gain_pct": self.cost_gain_pct,
            "edp_best": self.best.get("edp"),
            "edp_baseline": self.baseline.get("edp"),
            "edp_gain_pct": self.edp_gain_pct,
            "rounds": self.rounds,
            "failed_rounds": self.failed_rounds,
        }


def _gain_pct(best: Any, base: Any) -> float | None:
    if not isinstance(best, int | float) or not isinstance(base, int | float) or base == 0:
        return None
    return 100.0 * (1.0 - best / base)


def _num(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _opt_num(value: Any, name: str) -> float | None:
    return None if value is None else _num(value, name)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return value
