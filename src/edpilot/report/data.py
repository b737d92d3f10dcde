"""A run log as the report sees it: what was optimised, every round, per-config means, the chosen config.

`load_report(records)` checks the shape of every record it reads (types, finite numbers) and raises
ConfigError naming the record and field, so a damaged or foreign log is one clear line, never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edpilot.errors import ConfigError
from edpilot.report.fields import Fields, mean_of, objective_label

Key = tuple[float, int]


@dataclass(frozen=True)
class RunInfo:
    """What the run's `run` header says: where, what, at which traffic, optimising what."""

    device: str | None
    model: str | None
    arrivals: str | None
    arrival_rate_per_s: float | None
    objective: str | None  # as written by tune: "edp", "weighted:0.5", ...; None for a log without header
    energy_scope: str | None
    freqs_mhz: tuple[float, ...]
    batch_sizes: tuple[int, ...]

    @property
    def objective_label(self) -> str:
        """Axis/column label of the optimised cost, with its unit."""
        return objective_label(self.objective)

    def title(self, *, has_energy: bool) -> str:
        """One line naming device, model, arrival rate, objective and energy scope."""
        rate = "λ ?" if self.arrival_rate_per_s is None else f"λ = {self.arrival_rate_per_s:g} req/s"
        if self.arrivals:
            rate += f" ({self.arrivals})"
        energy = f"energy: {self.energy_scope or '?'}" if has_energy else "energy: not measured"
        objective = f"objective: {self.objective or '?'}"
        return " · ".join([self.device or "device ?", self.model or "model ?", rate, objective, energy])


@dataclass(frozen=True)
class RoundPoint:
    """One measurement window; `cost` is the optimised objective, None where the log has none."""

    round: int
    freq_mhz: float
    batch_size: int
    cost: float | None
    edp: float | None
    energy_per_request_j: float | None
    mean_latency_s: float | None
    p95_latency_s: float | None
    keeps_up: bool
    failed: bool

    @property
    def key(self) -> Key:
        """(frequency MHz, batch size)."""
        return (self.freq_mhz, self.batch_size)


@dataclass(frozen=True)
class ConfigPoint:
    """Mean of the successful windows a run log recorded at one config (None: not measured)."""

    freq_mhz: float
    batch_size: int
    windows: int
    failed_windows: int
    cost: float | None
    energy_per_request_j: float | None
    mean_latency_s: float | None
    p95_latency_s: float | None
    edp: float | None
    keeps_up: bool

    @property
    def key(self) -> Key:
        """(frequency MHz, batch size)."""
        return (self.freq_mhz, self.batch_size)

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class RunReport:
    """Everything the table and the plots show; `points` sorted by the optimised cost, lowest first."""

    info: RunInfo
    rounds: tuple[RoundPoint, ...]
    points: tuple[ConfigPoint, ...]
    best: Key | None
    baseline: Key | None

    @property
    def has_energy(self) -> bool:
        """Whether any config has an energy reading (a latency-only device has none)."""
        return any(p.energy_per_request_j is not None for p in self.points)

    def point(self, key: Key | None) -> ConfigPoint | None:
        """The aggregate of one config, or None."""
        return next((p for p in self.points if p.key == key), None)


def _info(header: dict[str, Any] | None) -> RunInfo:
    f = Fields(header or {}, where="run header")
    device = (header or {}).get("device")
    device_name = Fields(device, where="run header device").text("name") if isinstance(device, dict) else None
    return RunInfo(
        device=device_name if device_name is not None else f.text("device"),
        model=f.text("model"),
        arrivals=f.text("arrivals"),
        arrival_rate_per_s=f.number("arrival_rate_per_s", minimum=0.0),
        objective=f.text("objective"),
        energy_scope=f.text("energy_scope"),
        freqs_mhz=tuple(f.numbers("freqs_mhz", minimum=0.0)),
        batch_sizes=tuple(int(b) for b in f.numbers("batch_sizes", minimum=1.0, integer=True)),
    )


def _round(record: dict[str, Any], index: int) -> RoundPoint:
    f = Fields(record, where=f"round record {index}")
    requests = f.number("requests", minimum=0.0, integer=True)
    failed_requests = f.number("failed_requests", minimum=0.0, integer=True)
    failed = f.flag("failed")
    if failed is None:
        failed = requests is not None and failed_requests is not None and requests > 0 and failed_requests >= requests
    latency = f.number("mean_latency_s", minimum=0.0, required=not failed)
    return RoundPoint(
        round=int(f.number("round", minimum=0.0, integer=True, required=True)),  # type: ignore[arg-type]
        freq_mhz=f.number("freq_mhz", minimum=0.0, required=True),  # type: ignore[arg-type]
        batch_size=int(f.number("batch_size", minimum=1.0, integer=True, required=True)),  # type: ignore[arg-type]
        cost=None if failed else f.number("cost"),
        edp=f.number("edp", minimum=0.0),
        energy_per_request_j=f.number("energy_per_request_j", minimum=0.0),
        mean_latency_s=latency,
        p95_latency_s=f.number("p95_latency_s", minimum=0.0),
        keeps_up=bool(f.flag("keeps_up", default=True)),
        failed=failed,
    )


def _config(key: Key, rounds: list[RoundPoint]) -> ConfigPoint:
    ok = [r for r in rounds if not r.failed]
    return ConfigPoint(
        freq_mhz=key[0],
        batch_size=key[1],
        windows=len(ok),
        failed_windows=len(rounds) - len(ok),
        cost=mean_of([r.cost for r in ok]),
        energy_per_request_j=mean_of([r.energy_per_request_j for r in ok]),
        mean_latency_s=mean_of([r.mean_latency_s for r in ok]),
        p95_latency_s=mean_of([r.p95_latency_s for r in ok]),
        edp=mean_of([r.edp for r in ok]),
        keeps_up=sum(r.keeps_up for r in ok) * 2 > len(ok),
    )


def sort_key(p: ConfigPoint) -> tuple[float, ...]:
    """Lowest optimised cost first; configs without a cost (failed, legacy logs) by EDP, then latency."""
    inf = float("inf")
    return (
        p.windows == 0,
        inf if p.cost is None else p.cost,
        inf if p.edp is None else p.edp,
        inf if p.mean_latency_s is None else p.mean_latency_s,
    )


def _config_key(record: dict[str, Any], name: str) -> Key | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"summary record: '{name}' must be an object with freq_mhz and batch_size")
    f = Fields(value, where=f"summary record '{name}'")
    freq = f.number("freq_mhz", minimum=0.0, required=True)
    batch = f.number("batch_size", minimum=1.0, integer=True, required=True)
    return (float(freq), int(batch))  # type: ignore[arg-type]


def load_report(records: Sequence[dict[str, Any]]) -> RunReport:
    """Check and aggregate the records of one run log; ConfigError on a record of the wrong shape."""
    header = next((r for r in records if r.get("type") == "run"), None)
    summary = next((r for r in records if r.get("type") == "summary"), None)
    rounds = tuple(_round(r, i) for i, r in enumerate(r for r in records if r.get("type") == "round"))
    if not rounds:
        raise ConfigError("the run log has no rounds")
    groups: dict[Key, list[RoundPoint]] = {}
    for r in rounds:
        groups.setdefault(r.key, []).append(r)
    points = sorted((_config(k, rs) for k, rs in groups.items()), key=sort_key)
    baseline = _config_key(summary, "baseline") if summary else None
    if baseline is None and rounds[0].round == 0:
        baseline = rounds[0].key
    return RunReport(
        info=_info(header),
        rounds=rounds,
        points=tuple(points),
        best=_config_key(summary, "best") if summary else None,
        baseline=baseline,
    )


def pareto_front(points: Sequence[ConfigPoint]) -> list[ConfigPoint]:
    """Points no other beats on both energy per request and mean latency, by latency (energy needed)."""
    front: list[ConfigPoint] = []
    best_energy = float("inf")
    measured = [p for p in points if p.energy_per_request_j is not None and p.mean_latency_s is not None]
    for p in sorted(measured, key=lambda p: (p.mean_latency_s, p.energy_per_request_j)):
        if p.energy_per_request_j < best_energy:  # type: ignore[operator]
            front.append(p)
            best_energy = p.energy_per_request_j  # type: ignore[assignment]
    return front


def incumbent_cost(rounds: Sequence[RoundPoint]) -> list[float | None]:
    """The lowest cost observed up to and including each round (None until one is)."""
    out: list[float | None] = []
    best: float | None = None
    for r in rounds:
        if r.cost is not None and (best is None or r.cost < best):
            best = r.cost
        out.append(best)
    return out
