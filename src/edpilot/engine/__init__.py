"""Inference engines behind one `Engine` interface (see `edpilot.engine.base`).

    engine = open_engine("hf:tiny", EngineOptions(torch_device="cpu"))  # transformers, in process
    engine = open_engine("openai:http://127.0.0.1:8080")  # any OpenAI-compatible server

The `sim` engine lives in `edpilot.sim`. Raises ConfigError for unknown specs and EngineError when a
model cannot be loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from edpilot.engine.base import Completion, Engine
from edpilot.errors import ConfigError

__all__ = ["ENGINE_KINDS", "Completion", "Engine", "EngineOptions", "open_engine"]

ENGINE_KINDS = ("sim", "hf:PATH_OR_PRESET", "openai:URL")


@dataclass(frozen=True)
class EngineOptions:
    """How a real engine runs: torch device and dtype (hf), compiled decode (hf, CUDA), fixed output length."""

    torch_device: str | None = None
    dtype: str | None = None
    compiled: bool = False
    fixed_output_length: bool = True
    seed: int = 0


def open_engine(spec: str, options: EngineOptions | None = None) -> Engine:
    """Open a real engine from its spec string (`hf:...` or `openai:...`)."""
    o = options or EngineOptions()
    kind, _, arg = spec.partition(":")
    if kind == "hf":
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
    if kind == "openai":
        if not arg:
            raise ConfigError("--engine openai needs a URL, e.g. openai:http://127.0.0.1:8080")
        from edpilot.engine.openai import OpenAIEngine

        return OpenAIEngine(arg, fixed_output_length=o.fixed_output_length)
    raise ConfigError(f"unknown engine {spec!r}; choose one of: {', '.join(ENGINE_KINDS)}")
