"""Options that several commands share, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edpilot.cli.config_file import load_config_file
from edpilot.search import strategy_names

DeviceOpt = Annotated[
    str, typer.Option(help="Device: sim, sim:orin-agx-32gb, sim:orin-agx-64gb, jetson, nvml[:INDEX], cpu.")
]
EngineOpt = Annotated[
    str,
    typer.Option(
        help="Engine: sim (modelled batches), hf:PRESET|PATH|FILE.gguf (transformers), "
        "llamacpp:FILE.gguf|gemma-3-270m (llama.cpp in process), openai:URL (a server)."
    ),
]
ModelOpt = Annotated[str, typer.Option(help="Model the sim engine models: llama-3.2-1b, qwen2.5-3b.")]
SysfsRootOpt = Annotated[
    str | None, typer.Option(help="Read the Jetson's files under this root (env EDPILOT_SYSFS_ROOT).")
]
RailsOpt = Annotated[
    str | None, typer.Option(help="Jetson power rails that make the total (comma list); default VDD_IN or all.")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Never change clocks: measure at the current one, log what would be set.")
]
ReadOnlyOpt = Annotated[
    bool, typer.Option("--read-only", help="Never change clocks; search batch size only at the current clock.")
]
FreqsOpt = Annotated[
    str | None, typer.Option(help="GPU levels in MHz (comma list) or 'all'; default: 7 spread over the range.")
]
EmcsOpt = Annotated[
    str | None,
    typer.Option(
        help="Memory clock levels in MHz (comma list) or 'all' to search too; default: left as the board has it."
    ),
]
PhaseClocksOpt = Annotated[
    bool,
    typer.Option(
        "--phase-clocks",
        help="Search decode clock levels of their own: the engine switches at each batch's first decode step "
        "(sim, hf, llamacpp; static batching).",
    ),
]
BatchesOpt = Annotated[str | None, typer.Option(help="Batch sizes (comma list); default 4,8,...,28.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for arrivals, prompts, noise and the strategy.")]
TorchDeviceOpt = Annotated[str | None, typer.Option(help="hf engine: cuda or cpu (default: cuda if available).")]
DtypeOpt = Annotated[
    str | None, typer.Option(help="hf engine: float32, bfloat16, float16 (default: bfloat16 on cuda).")
]
CompileOpt = Annotated[
    bool, typer.Option("--compile", help="hf engine on CUDA: static KV cache + torch.compile (CUDA graphs) decode.")
]
FixedLengthOpt = Annotated[
    bool,
    typer.Option(
        "--fixed-output-length/--stop-at-eos",
        help="Decode exactly the output tokens asked for (ignore EOS), as benchmarks do; or stop at EOS.",
    ),
]
ConfigFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--config-file",
        callback=load_config_file,
        is_eager=True,
        expose_value=False,  # read before the other options, into their defaults; the command never sees it
        help="Take option values from this TOML file (`arrival-rate = 4`, top level or under [COMMAND]); "
        "the command line wins.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")]


def split_list(text: str | None) -> list[str] | None:
    """'a, b' -> ['a', 'b']; None stays None."""
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


ArrivalRateOpt = Annotated[float, typer.Option(help="Requests per second (λ).")]
ArrivalsOpt = Annotated[str, typer.Option(help="Arrival process: uniform (every 1/λ s), poisson, saturated.")]
TraceOpt = Annotated[
    Path | None, typer.Option(help='Replay a JSONL trace of {"arrival_s", "prompt", "max_new_tokens"}.')
]
OutputTokensOpt = Annotated[int, typer.Option(help="New tokens each request generates (at most 8192).")]
PromptTokensOpt = Annotated[int | None, typer.Option(help="Fixed prompt length; default: the shipped prompt set.")]
BaselineOpt = Annotated[
    str | None, typer.Option(help="FREQ_MHZ,BATCH to compare against; default: highest level, largest batch.")
]
StrategyOpt = Annotated[str, typer.Option(help=f"Search strategy: {', '.join(strategy_names())}, or module:Class.")]
ObjectiveOpt = Annotated[
    str | None,
    typer.Option(help="edp (default), ed2p, energy, latency, or weighted:ALPHA (α·E/E_base + (1−α)·L/L_base)."),
]
EnergyScopeOpt = Annotated[
    str | None, typer.Option(help="total (default): idle time between batches counts; active: batch service only.")
]
PaperOpt = Annotated[
    bool,
    typer.Option(
        "--paper",
        help="The paper's setting: objective weighted:0.5 on GPU energy while batches run (--energy-scope active, "
        "the GPU rail on a Jetson).",
    ),
]
SloOpt = Annotated[float | None, typer.Option("--slo-p95", help="Constraint: p95 latency at most this many seconds.")]
BatchingOpt = Annotated[
    str | None,
    typer.Option(
        help="static: batches of --batch run to completion (the paper's); continuous: --batch is the most "
        "sequences decoding at once, a request joins at the next decode step. Default: continuous for serve, static "
        "for tune and profile (--paper: static).",
    ),
]
SloTtftOpt = Annotated[
    float | None,
    typer.Option("--slo-ttft-p95", help="Constraint: p95 time to first token at most this many seconds."),
]
PowerCapOpt = Annotated[
    float | None, typer.Option("--power-cap", help="Constraint: mean power at most this many watts.")
]
MaxWaitOpt = Annotated[
    float | None,
    typer.Option(
        "--max-wait-s", "--max-wait", help="Flush a partial batch once its oldest request waited this long (s)."
    ),
]
BudgetOpt = Annotated[
    int,
    typer.Option(help="Search rounds after the baseline round (serve: online, at start and after each traffic drift)."),
]
RequestsPerRoundOpt = Annotated[
    int,
    typer.Option(help="Requests per measurement round (at least; tune rounds up to whole batches, and at least 2)."),
]
ProfileTableOpt = Annotated[
    Path | None,
    typer.Option(help="--device sim: replay this profile table (CSV) instead of the analytic simulator."),
]
RunLogOpt = Annotated[Path | None, typer.Option(help="Write the run log (JSONL), round by round.")]
PriorOpt = Annotated[
    Path | None,
    typer.Option(
        help="Warm start: begin from the batch times and energies of another board's run log (tune or serve "
        "--output) of the same model, engine and board kind."
    ),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")]
ThreadsOpt = Annotated[
    int | None, typer.Option(min=1, help="llamacpp engine: CPU threads (default: every CPU this process may use).")
]
GpuLayersOpt = Annotated[
    int | None,
    typer.Option(min=0, help="llamacpp engine: layers offloaded to the GPU (default: all on a GPU build, else 0)."),
]
ModelNameOpt = Annotated[
    str | None,
    typer.Option(help="openai engine: model name sent with each request (default: the first the server lists)."),
]
RequestTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--request-timeout",
        min=0.001,
        help="openai engine: total deadline per request in seconds (bounds a slow or trickling server).",
    ),
]
