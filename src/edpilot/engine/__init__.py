"""Inference engines behind one `Engine` interface (see `edpilot.engine.base`), chosen by a spec string.

    engine = open_engine("hf:tiny", EngineOptions(torch_device="cpu"), device)     # transformers, in process
    engine = open_engine("llamacpp:gemma-3-270m", EngineOptions(threads=2), device)  # llama.cpp, in process
    engine = open_engine("openai:http://127.0.0.1:8080", EngineOptions(), device)   # any OpenAI-compatible server

Backends register themselves with `register_engine`; `edpilot.sim` registers `sim`. `engine_kinds()` lists
the usage strings; `check_phase_clocks(spec)` says whether an engine can switch clocks between prefill and decode
(it calls `generate(..., on_decode=...)` at its first decode step). Raises ConfigError for unknown or incomplete
specs and EngineError when a model cannot be loaded or an optional dependency is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edpilot.engine.base import Completion, Engine
from edpilot.errors import ConfigError

if TYPE_CHECKING:
    from edpilot.hardware import Device

__all__ = [
    "Completion",
    "Engine",
    "EngineOptions",
    "check_phase_clocks",
    "engine_kinds",
    "open_engine",
    "register_engine",
]

DEFAULT_REQUEST_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class EngineOptions:
    """How a real engine runs.

    hf: torch device, dtype, compiled decode (CUDA). llamacpp: CPU threads (None: llama.cpp's default) and layers
    offloaded to the GPU (None: all when the build can offload, else 0). openai: model name (None: ask the server's
    /v1/models) and a total deadline per request in seconds. All: fixed output length (ignore EOS), seed.
    """

    torch_device: str | None = None
    dtype: str | None = None
    compiled: bool = False
    fixed_output_length: bool = True
    seed: int = 0
    threads: int | None = None
    gpu_layers: int | None = None
    model_name: str | None = None
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    sim_model: str = "llama-3.2-1b"  # sim on a real device: the model whose batches it stands in for
    filler_text: bool = False  # sim: answer with filler text of the requested length (the live server)

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if self.gpu_layers is not None and self.gpu_layers < 0:
            raise ConfigError(f"--gpu-layers must be 0 or more, got {self.gpu_layers}")
        if not 0 < self.request_timeout_s < 1e6:  # also rejects NaN
            raise ConfigError(f"--request-timeout must be a positive number of seconds, got {self.request_timeout_s}")
        if self.model_name is not None and not self.model_name.strip():
            raise ConfigError("--model-name must not be empty")


EngineOpener = Callable[[str, EngineOptions, "Device | None"], Engine]
_OPENERS: dict[str, tuple[EngineOpener, str]] = {}
_PHASE_CLOCKS: set[str] = set()  # kinds whose generate() calls on_decode between prefill and decode


def register_engine(kind: str, opener: EngineOpener, *, usage: str, phase_clocks: bool = False) -> None:
    """Make `--engine KIND[:ARG]` open an engine with `opener(ARG, options, device)`; `phase_clocks`: its
    `generate` calls `on_decode` at the first decode step (it sees its prefill end)."""
    _OPENERS[kind] = (opener, usage)
    if phase_clocks:
        _PHASE_CLOCKS.add(kind)


def check_phase_clocks(spec: str) -> None:
    """ConfigError unless the engine `spec` names can switch clocks between prefill and decode."""
    kind = spec.partition(":")[0]
    if kind not in _PHASE_CLOCKS:
        able = ", ".join(k for k in _OPENERS if k in _PHASE_CLOCKS)
        raise ConfigError(f"--phase-clocks needs an engine that sees its prefill end ({able}), not {spec}")


def engine_kinds() -> list[str]:
    """Usage strings of every registered engine, e.g. 'openai:URL'."""
    return [usage for _, usage in _OPENERS.values()]


def open_engine(spec: str, options: EngineOptions | None = None, device: Device | None = None) -> Engine:
    """Open the engine a spec string names (`hf:...`, `llamacpp:...`, `openai:...`, or a registered kind)."""
    kind, _, arg = spec.partition(":")
    if kind not in _OPENERS:
        raise ConfigError(f"unknown engine {spec!r}; choose one of: {', '.join(engine_kinds())}")
    return _OPENERS[kind][0](arg, options or EngineOptions(), device)


def _open_hf(arg: str, o: EngineOptions, device: Device | None) -> Engine:
    if not arg:
        raise ConfigError("--engine hf needs a model: hf:PATH, hf:FILE.gguf or hf:PRESET (e.g. hf:llama-3.2-1b)")
    from edpilot.engine.hf import HfEngine

    return HfEngine(
        arg,
        device=o.torch_device,
        dtype=o.dtype,
        compiled=o.compiled,
        fixed_output_length=o.fixed_output_length,
        seed=o.seed,
    )


def _open_llamacpp(arg: str, o: EngineOptions, device: Device | None) -> Engine:
    if not arg:
        raise ConfigError("--engine llamacpp needs a model: llamacpp:FILE.gguf or llamacpp:gemma-3-270m")
    from edpilot.engine.llamacpp import LlamaCppEngine

    return LlamaCppEngine(arg, threads=o.threads, gpu_layers=o.gpu_layers, fixed_output_length=o.fixed_output_length)


def _open_openai(arg: str, o: EngineOptions, device: Device | None) -> Engine:
    if not arg:
        raise ConfigError("--engine openai needs a URL, e.g. openai:http://127.0.0.1:8080")
    from edpilot.engine.openai import OpenAIEngine

    return OpenAIEngine(
        arg, model=o.model_name, request_timeout_s=o.request_timeout_s, fixed_output_length=o.fixed_output_length
    )


register_engine("hf", _open_hf, usage="hf:PATH_OR_PRESET", phase_clocks=True)
register_engine("llamacpp", _open_llamacpp, usage="llamacpp:FILE.gguf|gemma-3-270m", phase_clocks=True)
register_engine("openai", _open_openai, usage="openai:URL")
