"""An outside oracle: per-config true costs of benchmark scenarios, read from JSON (`edpilot bench --oracle-file`).

    {
      "format": "edpilot-oracle/1",
      "scenarios": [
        {"scenario": "syn-cliff", "rate_per_s": 4.0,
         "costs": [{"freq_mhz": 300.0, "batch_size": 2, "cost": 12.5},
                   {"freq_mhz": 300.0, "batch_size": 4, "cost": 9.1, "allowed": false}, ...]}
      ]
    }

`scenario` names a scenario of the sweep; `rate_per_s` (optional, default the scenario's own rate) is its rate or
one of its drift rates; `costs` lists every config of the scenario's grid once (`freq_mhz` null on a grid without
a clock), with its true cost (> 0) under the scenario's objective in any unit (only ratios are used) and, optional,
`allowed: false` for a config that breaks a constraint or cannot keep up. Runs are scored by cost / the lowest
allowed cost. Anything else is a ConfigError naming the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edpilot.bench.scenarios import Scenario
from edpilot.errors import ConfigError
from edpilot.jsonfields import Record, checking, flag, items, number, obj, optional, text, whole
from edpilot.space import Config, ConfigSpace

FORMAT = "edpilot-oracle/1"
MAX_BYTES = 64 * 1024 * 1024

Costs = dict[Config, tuple[float, bool]]  # config -> (true cost, allowed)
OracleTables = dict[str, dict[float | None, Costs]]  # scenario -> rate (None: the scenario's own) -> costs


def read_oracle_file(path: Path) -> OracleTables:
    """The tables of `path`, checked for shape (grids are checked against each scenario by `table_truth`)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; not an oracle file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read oracle file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({type(exc).__name__})") from None
    with checking(str(path), "oracle file"):
        if not isinstance(data, dict):
            raise ValueError("the file must hold one JSON object")
        if text(data, "format") != FORMAT:
            raise ValueError(f"'format' must be {FORMAT!r}, got {data['format']!r}")
        tables: OracleTables = {}
        for k, entry in enumerate(items(data, "scenarios", obj)):
            where = f"scenarios[{k}]"
            try:
                name = text(entry, "scenario")
                rate = optional(number, entry, "rate_per_s", positive=True)
                costs = _costs(items(entry, "costs", obj))
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if rate in tables.get(name, {}):
                raise ValueError(f"{where}: scenario {name!r} at rate {rate} is given twice")
            tables.setdefault(name, {})[rate] = costs
        if not tables:
            raise ValueError("'scenarios' is empty")
    return tables


def _costs(entries: list[Record]) -> Costs:
    costs: Costs = {}
    for i, e in enumerate(entries):
        try:
            config = Config.of(
                whole(e, "batch_size", minimum=1), gpu_mhz=optional(number, e, "freq_mhz", positive=True)
            )
            cost = number(e, "cost", positive=True)
            allowed = True if e.get("allowed") is None else flag(e, "allowed")
        except ValueError as exc:
            raise ValueError(f"costs[{i}]: {exc}") from None
        if config in costs:
            raise ValueError(f"costs[{i}]: {config} is given twice")
        costs[config] = (cost, allowed)
    if not any(allowed for _, allowed in costs.values()):
        raise ValueError("no config is allowed")
    return costs


@dataclass(frozen=True)
class TableTruth:
    """The oracle of one scenario and rate from a table: the same questions `bench.oracle.Truth` answers."""

    space: ConfigSpace
    costs: np.ndarray  # grid order
    allowed: np.ndarray  # grid order

    @property
    def oracle_cost(self) -> float:
        """Lowest allowed cost."""
        return float(self.costs[self.allowed].min())

    @property
    def oracle_config(self) -> Config:
        """The allowed config with the lowest cost."""
        return self.space.configs[int(np.argmin(np.where(self.allowed, self.costs, np.inf)))]

    def cost(self, config: Config) -> float:
        """The table's cost of `config`."""
        return float(self.costs[self.space.index(config)])

    def ratio(self, config: Config) -> float:
        """Cost over the oracle cost."""
        return self.cost(config) / self.oracle_cost

    def violates(self, config: Config, *, slo_p95_s: float | None, power_cap_w: float | None) -> bool:
        """A config the table does not allow (the limits are the table's, not these)."""
        return not bool(self.allowed[self.space.index(config)])


def table_truth(costs: Costs, space: ConfigSpace, *, where: str) -> TableTruth:
    """The table for `space`: every grid config once, none outside it; ConfigError naming `where` otherwise."""
    missing = [c for c in space if c not in costs]
    extra = [c for c in costs if c not in set(space)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} grid configs missing (first {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} not in the grid (first {extra[0]})")
        raise ConfigError(f"{where}: the costs do not match the scenario's grid of {len(space)}: {'; '.join(parts)}")
    return TableTruth(
        space, np.array([costs[c][0] for c in space], dtype=float), np.array([costs[c][1] for c in space], dtype=bool)
    )


def table_at(tables: dict[float | None, Costs], rate_per_s: float, *, own: bool) -> Costs | None:
    """The table for `rate_per_s` (one without a rate stands for the scenario's own rate, `own`), or None."""
    for rate, costs in tables.items():
        if (rate is None and own) or (rate is not None and math.isclose(rate, rate_per_s, rel_tol=1e-9)):
            return costs
    return None


def oracle_scenarios(
    scenarios: Sequence[Scenario], oracle: OracleTables, *, grid_of: Callable[[Scenario], ConfigSpace]
) -> list[Scenario]:
    """The scenarios `oracle` names, each table checked against the scenario's rates and grid (ConfigError)."""
    by_name = {s.name: s for s in scenarios}
    unknown = [name for name in oracle if name not in by_name]
    if unknown:
        known = ", ".join(list(by_name)[:6])
        raise ConfigError(f"oracle file: no scenario {unknown[0]!r} in this sweep (its scenarios: {known}, ...)")
    chosen = []
    for name, tables in oracle.items():
        scn = by_name[name]
        rates = [scn.rate_per_s] + [scn.rate_per_s * f for f in scn.drift]
        for rate in tables:
            if rate is not None and not any(math.isclose(rate, r, rel_tol=1e-9) for r in rates):
                listed = ", ".join(f"{r:g}" for r in rates)
                raise ConfigError(f"oracle file: {name} runs at {listed} req/s, not {rate:g}")
            table_truth(tables[rate], grid_of(scn), where=f"oracle file, {name}")
        chosen.append(scn)
    return chosen
