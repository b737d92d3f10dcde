"""A tuning run assembled from what the user asked: backends, workload, grid, session and run-log header.

`WorkloadRequest` and `SearchRequest` hold the parsed options (validated here, so bad numbers never reach a
device); `edpilot.backends.open_backends` opens the device and engine, and `start_session(...)` builds the grid,
the session and writes the header. The `tune` and `serve` commands are thin wrappers around these.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from edpilot import __version__
from edpilot.backends import Backends, grid
from edpilot.engine import check_phase_clocks
from edpilot.errors import ConfigError
from edpilot.hardware import Device
from edpilot.limits import LIMITS, bounded
from edpilot.objective import ENERGY_SCOPES, EnergyScope, Objective, parse_objective
from edpilot.runlog import RunHeader, RunLog
from edpilot.search import DEFAULT_STRATEGY, strategy_class
from edpilot.search.prior import HardwarePrior, read_prior
from edpilot.serving.traffic import Traffic
from edpilot.sim import ProfileTable
from edpilot.space import parse_batch_sizes, parse_config
from edpilot.tuner import SessionSettings, TuningSession
from edpilot.workload import RequestSource, TraceWorkload, Workload, read_trace

MAX_OUTPUT_TOKENS = int(LIMITS["output_tokens"].maximum)
MAX_PROMPT_TOKENS = int(LIMITS["prompt_tokens"].maximum)
MAX_BUDGET = int(LIMITS["budget"].maximum)

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
        bounded(self.arrival_rate_per_s, "arrival_rate_per_s", "--arrival-rate")
        bounded(self.output_tokens, "output_tokens", "--output-tokens")
        if self.prompt_tokens is not None:
            bounded(self.prompt_tokens, "prompt_tokens", "--prompt-tokens")

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
    emcs: str | None = None  # --emcs: memory clock levels to search (None: left where the board has it)
    phase_clocks: bool = False  # --phase-clocks: decode levels as axes of their own (the engine switches to them)
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
    prior: Path | None = None  # --prior: another board's run log of the same model (search.prior)
    parsed_objective: Objective = field(init=False)
    parsed_prior: HardwarePrior | None = field(init=False)

    def __post_init__(self) -> None:
        strategy_class(self.strategy)
        if self.batches is not None:
            parse_batch_sizes(self.batches)  # bounds checked now, before a device or a run log is opened
        if self.baseline is not None:
            parse_config(self.baseline)
        object.__setattr__(self, "parsed_objective", parse_objective(self.objective))
        object.__setattr__(self, "parsed_prior", None if self.prior is None else read_prior(self.prior))
        if self.energy_scope not in ENERGY_SCOPES:
            raise ConfigError(f"unknown energy scope {self.energy_scope!r}; choose one of: {', '.join(ENERGY_SCOPES)}")
        if self.phase_clocks and self.batching == "continuous":
            raise ConfigError("--phase-clocks needs static batching: a continuous step mixes prefill and decode")
        bounded(self.budget, "budget", "--budget")
        bounded(self.requests_per_round, "requests_per_round", "--requests-per-round")
        bounded(self.seed, "seed", "--seed")
        for value, what, flag in (
            (self.max_wait_s, "max_wait_s", "--max-wait"),
            (self.slo_p95_s, "latency_s", "--slo-p95"),
            (self.power_cap_w, "power_w", "--power-cap"),
            (self.slo_ttft_p95_s, "latency_s", "--slo-ttft-p95"),
        ):
            if value is not None:
                bounded(value, what, flag)


def resolve_paper(
    *, paper: bool, objective: str | None, energy_scope: str | None, rails: list[str] | None
) -> tuple[str, str, list[str] | None]:
    """The objective, energy scope and Jetson rails: `--paper` presets them (GPU rail only) and refuses a conflict."""
    if not paper:
        return "edp" if objective is None else objective, "total" if energy_scope is None else energy_scope, rails
    for given, preset, flag in (
        (objective, PAPER_OBJECTIVE, "--objective"),
        (energy_scope, "active", "--energy-scope"),
    ):
        if given is not None and given != preset:
            raise ConfigError(f"--paper sets {flag} {preset}; drop {flag} {given} or --paper")
    return PAPER_OBJECTIVE, PAPER_ENERGY_SCOPE, rails or list(PAPER_RAILS)


def session_settings(device: Device, search: SearchRequest, *, profile: ProfileTable | None = None) -> SessionSettings:
    """The grid of `device` (or the replayed `profile`), the baseline and the search settings of a session."""
    space = grid(
        device,
        profile=profile,
        freqs=search.freqs,
        batches=search.batches,
        emcs=search.emcs,
        phase_clocks=search.phase_clocks,
    )
    baseline = (
        space.validate(space.complete(parse_config(search.baseline)))
        if search.baseline is not None
        else space.baseline()
    )
    if baseline.freq_mhz is None and search.baseline is not None:
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
        budget=search.budget,
        slo_ttft_p95_s=search.slo_ttft_p95_s,
        batching=search.batching,
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
    profile: ProfileTable | None = None,
) -> RunHeader:
    """The run log's first record: what ran, on what, searched how (and a replayed profile's idle power)."""
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
        baseline=baseline.fields(),
        axes={a.name: list(a.levels) for a in space.axes if a.name != "gpu_mhz"},
        mode=mode,
        extra={
            "slo_p95_s": search.slo_p95_s,
            "slo_ttft_p95_s": search.slo_ttft_p95_s,
            "power_cap_w": search.power_cap_w,
            "max_wait_s": search.max_wait_s,
            "batching": search.batching,
            "prompt_tokens": None if output_tokens is None else traffic.prompt_tokens,  # live traffic: not known yet
            **idle_record(profile),
        },
    )


def with_prior(
    settings: SessionSettings, search: SearchRequest, header: RunHeader
) -> tuple[SessionSettings, RunHeader]:
    """`--prior`: the other board's run checked against this run's header (ConfigError, one line, when it ran
    another model, engine, board or lengths) and handed to the session; the header records what it brought."""
    if search.parsed_prior is None:
        return settings, header
    prior = search.parsed_prior.matched(header)
    return replace(settings, prior=prior), replace(header, extra={**header.extra, "prior": prior.describe()})


def idle_record(profile: ProfileTable | None) -> dict[str, object]:
    """The idle power a replayed profile assumes and how it was measured: `idle_power_w`, and how long idle
    power took to settle before it was read (`idle_settle_s`, `idle_settled`); empty without a profile."""
    if profile is None or "idle_power_w" not in profile.metadata:
        return {}
    meta = profile.metadata
    return {
        "idle_power_w": meta["idle_power_w"],
        "idle_settle_s": meta.get("idle_settle_s", "not recorded"),
        "idle_settled": meta.get("idle_settled", "not recorded"),
    }


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
    if search.phase_clocks:
        check_phase_clocks(backends.engine.name)
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
        profile=backends.profile,
    )
    settings, header = with_prior(settings, search, header)
    run_log.write(header)
    return TuningSession(settings, traffic, run_log=run_log)
