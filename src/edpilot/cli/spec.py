"""The run specification: the option groups `tune`, `serve` and `profile` share, each declared and checked once.

A command names the groups it takes as parameters (`device: DeviceSpec`, `search: SearchSpec`, ...);
`edpilot.cli.groups.with_groups` turns each group's fields into its options and hands the command the built,
checked group. To add an option to a group, add one field: `emcs: EmcsOpt = None` (the `Annotated` option type
goes in `edpilot.cli.options`, the check, if any, in the group's `__post_init__`); every command that takes the
group then has it, with the same name, default and help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from edpilot.backends import Backends, open_backends
from edpilot.cli.options import (
    ArrivalRateOpt,
    ArrivalsOpt,
    BaselineOpt,
    BatchesOpt,
    BatchingOpt,
    BudgetOpt,
    CompileOpt,
    DeviceOpt,
    DryRunOpt,
    DtypeOpt,
    EmcsOpt,
    EnergyScopeOpt,
    EngineOpt,
    FixedLengthOpt,
    FreqsOpt,
    GpuLayersOpt,
    JsonOpt,
    MaxWaitOpt,
    ModelNameOpt,
    ModelOpt,
    ObjectiveOpt,
    OutputTokensOpt,
    OverwriteOpt,
    PaperOpt,
    PhaseClocksOpt,
    PowerCapOpt,
    PriorOpt,
    ProfileTableOpt,
    PromptTokensOpt,
    RailsOpt,
    ReadOnlyOpt,
    RequestsPerRoundOpt,
    RequestTimeoutOpt,
    RunLogOpt,
    SeedOpt,
    SloOpt,
    SloTtftOpt,
    StrategyOpt,
    SysfsRootOpt,
    ThreadsOpt,
    TorchDeviceOpt,
    TraceOpt,
    split_list,
)
from edpilot.engine import DEFAULT_REQUEST_TIMEOUT_S, EngineOptions
from edpilot.limits import bounded
from edpilot.run import PAPER_RAILS, SearchRequest, WorkloadRequest, resolve_batching, resolve_paper
from edpilot.search import DEFAULT_STRATEGY
from edpilot.space import parse_batch_sizes

# The paper's workload, the benchmark scenarios' and what a default profile is then replayed at by a default tune.
DEFAULT_OUTPUT_TOKENS = 70


@dataclass(frozen=True)
class DeviceSpec:
    """The device, how edpilot may touch it, and (sim) a profile table to replay."""

    PANEL: ClassVar[str] = "Device"

    device: DeviceOpt = "sim"
    sysfs_root: SysfsRootOpt = None
    rails: RailsOpt = None
    dry_run: DryRunOpt = False
    read_only: ReadOnlyOpt = False
    profile: ProfileTableOpt = None


@dataclass(frozen=True)
class EngineSpec:
    """The engine and how it runs; `seed` seeds arrivals, prompts, the sim's noise and the strategy."""

    PANEL: ClassVar[str] = "Engine"

    engine: EngineOpt = "sim"
    model: ModelOpt = "llama-3.2-1b"
    seed: SeedOpt = 0
    torch_device: TorchDeviceOpt = None
    dtype: DtypeOpt = None
    compile_decode: CompileOpt = False
    fixed_output_length: FixedLengthOpt = True
    threads: ThreadsOpt = None
    gpu_layers: GpuLayersOpt = None
    model_name: ModelNameOpt = None
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT_S
    options: EngineOptions = field(init=False)

    def __post_init__(self) -> None:
        bounded(self.seed, "seed", "--seed")
        if self.threads is not None:
            bounded(self.threads, "threads", "--threads")
        if self.gpu_layers is not None:
            bounded(self.gpu_layers, "gpu_layers", "--gpu-layers")
        engine_options = EngineOptions(
            torch_device=self.torch_device,
            dtype=self.dtype,
            compiled=self.compile_decode,
            fixed_output_length=self.fixed_output_length,
            seed=self.seed,
            threads=self.threads,
            gpu_layers=self.gpu_layers,
            model_name=self.model_name,
            request_timeout_s=self.request_timeout,
        )
        object.__setattr__(self, "options", engine_options)


@dataclass(frozen=True)
class WorkloadSpec:
    """Which requests arrive: a trace, or an arrival process with prompt and output lengths."""

    PANEL: ClassVar[str] = "Workload"

    arrival_rate: ArrivalRateOpt = 1.0
    arrivals: ArrivalsOpt = "uniform"
    trace: TraceOpt = None
    output_tokens: OutputTokensOpt = DEFAULT_OUTPUT_TOKENS
    prompt_tokens: PromptTokensOpt = None
    request: WorkloadRequest = field(init=False)

    def __post_init__(self) -> None:
        request = WorkloadRequest(
            arrivals=self.arrivals,
            arrival_rate_per_s=self.arrival_rate,
            output_tokens=self.output_tokens,
            prompt_tokens=self.prompt_tokens,
            trace=self.trace,
        )
        object.__setattr__(self, "request", request)


@dataclass(frozen=True)
class GridSpec:
    """The GPU levels, memory clock levels (`--emcs`, default: not searched) and batch sizes to measure; with
    `--phase-clocks`, decode levels of their own."""

    PANEL: ClassVar[str] = "Grid"

    freqs: FreqsOpt = None
    emcs: EmcsOpt = None
    phase_clocks: PhaseClocksOpt = False
    batches: BatchesOpt = None

    def __post_init__(self) -> None:
        if self.batches is not None:
            parse_batch_sizes(self.batches)  # bounds checked now, before a device is opened


@dataclass(frozen=True)
class SearchSpec(GridSpec):
    """How to search: the grid, baseline, strategy, objective (`--paper` resolved), budget and constraints."""

    PANEL: ClassVar[str] = "Search"

    baseline: BaselineOpt = None
    strategy: StrategyOpt = DEFAULT_STRATEGY
    budget: BudgetOpt = 30
    objective: ObjectiveOpt = None
    energy_scope: EnergyScopeOpt = None
    paper: PaperOpt = False
    slo_p95: SloOpt = None
    slo_ttft_p95: SloTtftOpt = None
    power_cap: PowerCapOpt = None
    batching: BatchingOpt = None
    requests_per_round: RequestsPerRoundOpt = 32
    max_wait_s: MaxWaitOpt = None
    seed: SeedOpt = 0
    prior: PriorOpt = None
    request: SearchRequest = field(init=False)

    def __post_init__(self) -> None:  # SearchRequest checks the grid's batch sizes too
        if self.max_wait_s is not None:
            bounded(self.max_wait_s, "max_wait_s", "--max-wait-s")
        objective, scope, _ = resolve_paper(
            paper=self.paper, objective=self.objective, energy_scope=self.energy_scope, rails=None
        )
        request = SearchRequest(
            freqs=self.freqs,
            emcs=self.emcs,
            phase_clocks=self.phase_clocks,
            batches=self.batches,
            baseline=self.baseline,
            strategy=self.strategy,
            budget=self.budget,
            objective=objective,
            energy_scope=scope,
            requests_per_round=self.requests_per_round,
            max_wait_s=self.max_wait_s,
            slo_p95_s=self.slo_p95,
            slo_ttft_p95_s=self.slo_ttft_p95,
            power_cap_w=self.power_cap,
            seed=self.seed,
            batching=resolve_batching(self.batching, paper=self.paper),
            prior=self.prior,
        )
        object.__setattr__(self, "request", request)

    def rails(self, device: DeviceSpec) -> list[str] | None:
        """The Jetson rails that make the total: those given, else (--paper) the GPU rail."""
        given = split_list(device.rails)
        return given or (list(PAPER_RAILS) if self.paper else None)


@dataclass(frozen=True)
class OutputSpec:
    """Where the run log goes, and how the result is printed."""

    PANEL: ClassVar[str] = "Output"

    output: RunLogOpt = None
    overwrite: OverwriteOpt = False
    json_output: JsonOpt = False


def open_run(
    device: DeviceSpec,
    engine: EngineSpec,
    *,
    rails: list[str] | None,
    engine_options: EngineOptions | None = None,
    sim_speed: float | None = None,
) -> Backends:
    """Open the device and engine the groups name (`engine_options`: the engine group's, or the caller's variant)."""
    return open_backends(
        device=device.device,
        engine=engine.engine,
        model=engine.model,
        profile=str(device.profile) if device.profile else None,
        seed=engine.seed,
        sysfs_root=device.sysfs_root,
        rails=rails,
        dry_run=device.dry_run,
        read_only=device.read_only,
        engine_options=engine_options or engine.options,
        sim_speed=sim_speed,
    )
