"""The run log's records, typed: `RunHeader` (what ran), `RoundRecord` (one window), `Summary` (the outcome).

`tune` and `serve` write them, `report` reads them. Each `from_dict` is the one place that checks a record read
back: every field's type, finite numbers within range, and ConfigError naming the line and the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edpilot.jsonfields import Record, checking, flag, items, number, obj, optional, text, whole
from edpilot.objective import ENERGY_SCOPES, Observation, parse_objective
from edpilot.space import Config, is_knob_name

CONSTRAINT_NAMES = ("slo_p95_s", "power_cap_w")


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
    axes: dict[str, list[float | None]] = field(default_factory=dict)  # the grid's knobs besides the GPU's

    def grid_levels(self) -> dict[str, list[float | None]]:
        """Every searched knob's levels, the GPU's (`freqs_mhz`) first."""
        return {"gpu_mhz": self.freqs_mhz, **self.axes}

    @property
    def device_name(self) -> str | None:
        """The device's name as it described itself ('sim:orin-agx-32gb', 'cpu', ...)."""
        return self.device.get("name")

    @property
    def baseline_config(self) -> Config:
        """The config every other is compared against."""
        return Config.from_fields(self.baseline)

    def to_dict(self) -> dict[str, Any]:
        """The `run` record (`axes` only where the grid has knobs besides the GPU's)."""
        record = {"type": "run", **asdict(self)}
        if not self.axes:
            del record["axes"]
        return record

    @classmethod
    def from_dict(cls, d: Record, *, where: str) -> RunHeader:
        """Parse a `run` record, checking every field; ConfigError names `where` and the field."""
        with checking(where, "run header"):
            optional(text, obj(d, "device"), "name")
            parse_objective(text(d, "objective"))
            if text(d, "energy_scope") not in ENERGY_SCOPES:
                raise ValueError(f"'energy_scope' must be one of: {', '.join(ENERGY_SCOPES)}")
            _config(d, "baseline")
            return cls(
                version=text(d, "version"),
                device=d["device"],
                engine=obj(d, "engine"),
                model=optional(text, d, "model"),
                arrivals=text(d, "arrivals"),
                arrival_rate_per_s=optional(number, d, "arrival_rate_per_s"),
                output_tokens=optional(number, d, "output_tokens"),
                objective=d["objective"],
                energy_scope=d["energy_scope"],
                strategy=text(d, "strategy"),
                budget=optional(whole, d, "budget"),
                seed=whole(d, "seed"),
                freqs_mhz=items(d, "freqs_mhz", lambda e, n: optional(number, e, n, positive=True)),
                batch_sizes=items(d, "batch_sizes", lambda e, n: whole(e, n, minimum=1)),
                baseline=d["baseline"],
                mode=text(d, "mode"),
                extra=obj(d, "extra") if "extra" in d else {},
                axes=_axes(d),
            )


@dataclass(frozen=True)
class RoundRecord:
    """One measurement window: where (config), what was observed, its cost (None: the window failed), and the
    incumbent: the config the strategy would choose once told this window (what the convergence plot follows)."""

    round: int
    role: str
    config: Config
    obs: Observation
    cost: float | None
    note: str | None = None
    incumbent: Config | None = None  # the strategy's choice once this window was told (None: not recorded)

    def to_dict(self) -> dict[str, Any]:
        """The `round` record: config and observation fields flattened, EDP included."""
        record = {
            "type": "round",
            "round": self.round,
            "role": self.role,
            **self.config.fields(),
            **self.obs.to_dict(),
            "cost": self.cost,
        }
        if self.note:
            record["note"] = self.note
        if self.incumbent is not None:
            record["incumbent"] = self.incumbent.fields()
        return record

    @classmethod
    def from_dict(cls, d: Record, *, where: str) -> RoundRecord:
        """Parse a `round` record, checking every field; ConfigError names `where` and the field."""
        with checking(where, "round record"):
            requests = whole(d, "requests")
            failed_requests = optional(whole, d, "failed_requests") or 0
            if failed_requests > requests:
                raise ValueError(f"'failed_requests' ({failed_requests}) exceeds 'requests' ({requests})")
            obs = Observation(
                requests=requests,
                energy_per_request_j=optional(number, d, "energy_per_request_j"),
                mean_latency_s=number(d, "mean_latency_s"),
                p95_latency_s=number(d, "p95_latency_s"),
                mean_ttft_s=optional(number, d, "mean_ttft_s"),
                power_w=optional(number, d, "power_w"),
                mean_batch_s=number(d, "mean_batch_s"),
                energy_per_batch_j=optional(number, d, "energy_per_batch_j"),
                window_s=number(d, "window_s"),
                keeps_up=flag(d, "keeps_up"),
                actual_freq_mhz=optional(number, d, "actual_freq_mhz", positive=True),
                failed_requests=failed_requests,
                meter_updates=optional(number, d, "meter_updates"),
                first_error=optional(text, d, "first_error"),
                mean_fill_wait_s=optional(number, d, "mean_fill_wait_s"),
                mean_queue_wait_s=optional(number, d, "mean_queue_wait_s"),
                mean_service_s=optional(number, d, "mean_service_s"),
                backlog_requests=optional(whole, d, "backlog_requests"),
                p50_ttft_s=optional(number, d, "p50_ttft_s"),
                p95_ttft_s=optional(number, d, "p95_ttft_s"),
                p50_itl_s=optional(number, d, "p50_itl_s"),
                p95_itl_s=optional(number, d, "p95_itl_s"),
                steps=optional(whole, d, "steps"),
                peak_sequences=optional(whole, d, "peak_sequences"),
                mean_sequences=optional(number, d, "mean_sequences"),
                mean_context_tokens=optional(number, d, "mean_context_tokens"),
            )
            cost = optional(number, d, "cost", minimum=None)
            if obs.failed and cost is not None:
                raise ValueError("'cost' must be null: every request of the window failed")
            return cls(
                round=whole(d, "round"),
                role=text(d, "role"),
                config=_config(d, None),
                obs=obs,
                cost=cost,
                note=optional(text, d, "note"),
                incumbent=_config(d, "incumbent") if d.get("incumbent") is not None else None,
            )


@dataclass(frozen=True)
class Summary:
    """The outcome: the chosen config and the baseline, their costs under the objective and their EDP.

    `interrupted`: a signal stopped the run early, and the choice is the best of what it had measured.
    `constraints_met` says, for each constraint given (`slo_p95_s`, `power_cap_w`), whether the chosen config's
    windows met it; `baseline_kept` that the search's choice measured worse than the baseline and the baseline
    was kept; `search_choice` holds the search's own choice when the session chose another (the baseline, or
    a config that meets the constraints); `warnings` the lines said about it.
    """

    objective: str
    best: dict[str, Any]
    baseline: dict[str, Any]
    rounds: int
    failed_rounds: int
    interrupted: bool = False  # a signal stopped the run: chosen from the rounds measured until then
    # issue 21: the stock-governor round (a config dict like `baseline`, freq_mhz None) and where the gain
    # comes from against each baseline (edpilot.attribution: Attribution.to_dict()).
    governor: dict[str, Any] | None = None
    attribution: dict[str, Any] | None = None
    attribution_vs_governor: dict[str, Any] | None = None
    constraints_met: dict[str, bool] = field(default_factory=dict)
    baseline_kept: bool = False
    search_choice: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def best_config(self) -> Config:
        """The chosen config."""
        return Config.from_fields(self.best)

    @property
    def baseline_config(self) -> Config:
        """The config the chosen one is compared against."""
        return Config.from_fields(self.baseline)

    @property
    def edp_gain_pct(self) -> float | None:
        """How much lower the chosen config's EDP is than the baseline's, in percent."""
        return gain_pct(self.best.get("edp"), self.baseline.get("edp"))

    @property
    def edp_gain_vs_governor_pct(self) -> float | None:
        """How much lower the chosen config's EDP is than the stock governor's, in percent."""
        return gain_pct(self.best.get("edp"), (self.governor or {}).get("edp"))

    @property
    def cost_gain_pct(self) -> float | None:
        """How much lower the chosen config's cost (the optimised objective) is than the baseline's, in percent."""
        return gain_pct(self.best.get("cost"), self.baseline.get("cost"))

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
            "interrupted": self.interrupted,
            "governor": self.governor,
            "edp_governor": (self.governor or {}).get("edp"),
            "edp_gain_vs_governor_pct": self.edp_gain_vs_governor_pct,
            "attribution": self.attribution,
            "attribution_vs_governor": self.attribution_vs_governor,
            "constraints_met": self.constraints_met,
            "baseline_kept": self.baseline_kept,
            "search_choice": self.search_choice,
            "warnings": self.warnings,
        }

    @classmethod
    def from_dict(cls, d: Record, *, where: str) -> Summary:
        """Parse a `summary` record: the objective, both configs and their numbers; ConfigError names the field."""
        with checking(where, "summary record"):
            optional_configs = [name for name in ("governor", "search_choice") if d.get(name) is not None]
            for name in ("best", "baseline", *optional_configs):
                _config(d, name)
                for key, value in d[name].items():
                    if key not in ("batch_size", "keeps_up") and value is not None:
                        number(d[name], key, minimum=None)
            met = optional(obj, d, "constraints_met") or {}
            for key in met:
                if key not in CONSTRAINT_NAMES:
                    raise ValueError(f"'constraints_met' names an unknown constraint {key!r}")
                flag(met, key)
            return cls(
                objective=str(parse_objective(text(d, "objective"))),
                best=d["best"],
                baseline=d["baseline"],
                rounds=whole(d, "rounds"),
                failed_rounds=whole(d, "failed_rounds"),
                interrupted=optional(flag, d, "interrupted") or False,
                governor=d.get("governor"),
                attribution=obj(d, "attribution") if d.get("attribution") is not None else None,
                attribution_vs_governor=(
                    obj(d, "attribution_vs_governor") if d.get("attribution_vs_governor") is not None else None
                ),
                constraints_met=met,
                baseline_kept=bool(optional(flag, d, "baseline_kept")),
                search_choice=d.get("search_choice"),
                warnings=items(d, "warnings", text) if d.get("warnings") is not None else [],
            )


def gain_pct(best: Any, base: Any) -> float | None:
    """How much lower `best` is than `base`, in percent (None where either is missing or `base` is 0)."""
    if not isinstance(best, int | float) or not isinstance(base, int | float) or base == 0:
        return None
    return 100.0 * (1.0 - best / base)


def _axes(d: Record) -> dict[str, list[float | None]]:
    """The header's `axes`: knob name -> levels (numbers > 0, or one null: left at the device's level)."""
    axes = optional(obj, d, "axes") or {}
    for name in axes:
        if not is_knob_name(name) or name == "gpu_mhz":
            raise ValueError(f"'axes' names {name!r}, not a knob besides the GPU's (emc_mhz, decode_gpu_mhz)")
        items(axes, name, lambda e, n: optional(number, e, n, positive=True))
    return axes


def _config(d: Record, name: str | None) -> Config:
    """The config a record names: its own knob levels and batch_size (`name` None), or those of its object `name`.

    `freq_mhz` (or `gpu_mhz`) is the GPU level, every other `*_mhz` field a knob of that name (`Config.fields`).
    """
    c = d if name is None else obj(d, name)
    try:
        whole(c, "batch_size", minimum=1)
        for key in c:
            if key == "freq_mhz" or is_knob_name(key):
                optional(number, c, key, positive=True)
        return Config.from_fields(c)
    except ValueError as exc:
        raise ValueError(f"{exc} in '{name}'" if name else str(exc)) from None
