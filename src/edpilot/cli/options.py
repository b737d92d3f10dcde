"""Options that several commands share, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

DeviceOpt = Annotated[
    str, typer.Option(help="Device: sim, sim:orin-agx-32gb, sim:orin-agx-64gb, jetson, nvml[:INDEX], cpu.")
]
EngineOpt = Annotated[
    str,
    typer.Option(
        help="Engine: sim (modelled batches), hf:PRESET|PATH|FILE.gguf (transformers), openai:URL (a server)."
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
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")]


def split_list(text: str | None) -> list[str] | None:
    """'a, b' -> ['a', 'b']; None stays None."""
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


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
