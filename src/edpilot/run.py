"""A tuning run assembled from what the user asked: backends, workload, grid, session and run-log header.

`WorkloadRequest` and `SearchRequest` hold the parsed options (validated here, so bad numbers never reach a
device); `edpilot.backends.open_backends` opens the device and engine, and `start_session(...)` builds the grid,
the session and writes the header. The `tune` and `serve` commands are thin wrappers around these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from edpilot import __version__
from edpilot.backends import Backends, grid
from edpilot.errors import ConfigError
from edpilot.hardware import Device
from edpilot.objective import ENERGY_SCOPES, EnergyScope, Objective, parse_objective
from edpilot.runlog import RunHeader, RunLog
from edpilot.search import DEFAULT_STRATEGY, strategy_class
from edpilot.serving.traffic import Traffic
from edpilot.sim import ProfileTable
from edpilot.space import parse_config
from edpilot.tuner import SessionSettings, TuningSession
from edpilot.workload import RequestSource, TraceWorkload, Workload, read_trace

MAX_OUTPUT_TOKENS = 8192  # a cap, so a typo cannot allocate a KV cache that gets the process killed
MAX_PROMPT_TOKENS = 131072
MAX_REQUESTS_PER_ROUND = 100_000
MAX_BUDGET = 100_000

PAPER_OBJECTIVE = "weighted:0.5"
PAPER_ENERGY_SCOPE: EnergyScope = "active"
PAPER_RAILS = ("VDD_GPU_SOC",)  # the GPU rail of the AGX Orin: the paper counts GPU energy
BATCHING_KINDS = ("static", "continuous")


def resolve_batching(batching: str | None, *, paper: bool, default: str = "static") -> str:
    """`static` or `continuous`; `--paper` keeps the paper's static batching and refuses continuous."""
    if batching is not None and batching not in BATCHING_KINDS:
        raise ConfigError(f"unknown --batching {batching!r}; choose one of: {', '.join(BATCHING_KINDS)}")
    if paper:
        if batching == "continuous":
            raise ConfigError("--paper runs static batching, as the paper did; drop --batching continuous or --paper")
        return "static"
    return batching or default


@dataclass(frozen=True)
class WorkloadRequest:
    """Which requests arrive: a trace, or an arrival process with lengths."""

    arrivals: str = "uniform"
    arrival_rate_per_s: float = 1.0
    output_tokens: int = 70
    prompt_tokens: int | None = None
    trace: Path | None = None

    def __post_init__(self) -> None:
        _finite_positive(self.arrival_rate_per_s, "--arrival-rate")
        _bounded_int(self.output_tokens, "--output-tokens", MAX_OUTPUT_TOKENS)
        if self.prompt_tokens is not None:
            _bounded_int(self.prompt_tokens, "--prompt-tokens", MAX_PROMPT_TOKENS)

    def open(self) -> RequestSource:
        """The workload the runner draws windows from."""
        if self.trace is not None:
            return TraceWorkload(read_trace(self.trace, max_new_tokens_cap=MAX_OUTPUT_TOKENS))
        return Workload(
            arrivals=self.arrivals,  # type: ignore[arg-type]
            rate_per_s=self.arrival_rate_per_s,
            output_tokens=self.output_tokens,
            prompt_tokens=self.prompt_tokens,
        )


@dataclass(frozen=True)
class SearchRequest:
    """How to search: grid, baseline, strategy, objective, budget and constraints (`--paper` resolved)."""

    freqs: str | None = None
    batches: str | None = None
    baseline: str | None = None
    strategy: str = DEFAULT_STRATEGY
    budget: int = 30
    objective: str = "edp"
    energy_scope: str = "total"
    requests_per_round: int = 32
    max_wait_s: float | None = None
    slo_p95_s: float | None = None
    power_cap_w: float | None = None
    seed: int = 0
    slo_ttft_p95_s: float | None = None
    batching: str = "static"
    parsed_objective: Objective = field(init=False)

    def __post_init__(self) -> None:
        strategy_class(self.strategy)
        object.__setattr__(self, "parsed_objective", parse_objective(self.objective))
        if self.energy_scope not in ENERGY_SCOPES:
            raise ConfigError(f"unknown energy scope {self.energy_scope!r}; choose one of: {', '.join(ENERGY_SCOPES)}")
        _bounded_int(self.budget, "--budget", MAX_BUDGET)
        _bounded_int(self.requests_per_round, "--requests-per-round", MAX_REQUESTS_PER_ROUND)
        _bounded_int(self.seed, "--seed", 2**32 - 1, minimum=0)
        if self.max_wait_s is not None and not (self.max_wait_s >= 0 and math.isfinite(self.max_wait_s)):
            raise ConfigError(f"--max-wait must be a finite number of seconds >= 0, got {self.max_wait_s}")
        for value, name in (
            (self.slo_p95_s, "--slo-p95"),
            (self.power_cap_w, "--power-cap"),
            (self.slo_ttft_p95_s, "--slo-ttft-p95"),
        ):
            if value is not None:
                _finite_positive(value, name)


def resolve_paper(
    *, paper: bool, objective: str | None, energy_scope: str | None, rails: list[str] | None
) -> tuple[str, str, list[str] | None]:
    """The objective, energy scope and Jetson rails: `--paper` presets them (GPU rail only) and refuses a conflict."""
    if not paper:
        return objective or "edp", energy_scope or "total", rails
    for given, preset, flag in (
        (objective, PAPER_OBJECTIVE, "--objective"),
        (energy_scope, "active", "--energy-scope"),
    ):
        if given is not None and given != preset:
            raise ConfigError(f"--paper sets {flag} {preset}; drop {flag} {given} or --paper")
    return PAPER_OBJECTIVE, PAPER_ENERGY_SCOPE, rails or list(PAPER_RAILS)


def session_settings(device: Device, search: SearchRequest, *, profile: ProfileTable | None = None) -> SessionSettings:
    """The grid of `device` (or the replayed `profile`), the baseline and the search settings of a session."""
    space = grid(device, profile=profile, freqs=search.freqs, batches=search.batches)
    baseline = space.validate(parse_config(search.baseline)) if search.baseline else space.baseline()
    if baseline.freq_mhz is None and search.baseline:
        raise ConfigError(f"{device.name} has no clock knob: --baseline cannot name a frequency")
    return SessionSettings(
        space=space,
        objective=search.parsed_objective,
        strategy=search.strategy,
        baseline=baseline,
        energy_scope=search.energy_scope,  # type: ignore[arg-type]
        idle_power_w=profile.idle_power_w if profile and profile.has_energy else None,
        seed=search.seed,
        slo_p95_s=search.slo_p95_s,
        power_cap_w=search.power_cap_w,
        slo_ttft_p95_s=search.slo_ttft_p95_s,
    )


def run_header(
    settings: SessionSettings,
    search: SearchRequest,
    traffic: Traffic,
    *,
    device: dict[str, object],
    engine: dict[str, object],
    model: str | None,
    mode: str,
    workload_name: str,
    output_tokens: float | None,
) -> RunHeader:
    """The run log's first record: what ran, on what, searched how."""
    space, baseline = settings.space, settings.baseline
    model = str(engine.get("model") or model or "") or None
    return RunHeader(
        version=__version__,
        device=device,
        engine=engine,
        model=model,
        arrivals=workload_name,
        arrival_rate_per_s=traffic.rate_per_s if traffic.arrivals != "saturated" else None,
        output_tokens=output_tokens,
        objective=str(search.parsed_objective),
        energy_scope=search.energy_scope,
        strategy=search.strategy,
        budget=search.budget if mode == "tune" else None,
        seed=search.seed,
        freqs_mhz=list(space.freqs_mhz),
        batch_sizes=list(space.batch_sizes),
        baseline={"freq_mhz": baseline.freq_mhz, "batch_size": baseline.batch_size},
        mode=mode,
        extra={
            "slo_p95_s": search.slo_p95_s,
            "slo_ttft_p95_s": search.slo_ttft_p95_s,
            "power_cap_w": search.power_cap_w,
            "max_wait_s": search.max_wait_s,
            "batching": search.batching,
        },
    )


def start_session(
    backends: Backends,
    search: SearchRequest,
    traffic: Traffic,
    *,
    run_log: RunLog,
    model: str | None,
    mode: str = "tune",
    workload_name: str,
    output_tokens: float | None,
) -> TuningSession:
    """Build the grid and the session for `backends`, and write the run log's header."""
    settings = session_settings(backends.device, search, profile=backends.profile)
    header = run_header(
        settings,
        search,
        traffic,
        device=backends.device.describe(),
        engine=backends.engine.describe(),
        model=model,
        mode=mode,
        workload_name=workload_name,
        output_tokens=output_tokens,
    )
    run_log.write(header)
    return TuningSession(settings, traffic, run_log=run_log)


def _finite_positive(value: float, name: str) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value}")


def _bounded_int(value: int, name: str, maximum: int, *, minimum: int = 1) -> None:
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
