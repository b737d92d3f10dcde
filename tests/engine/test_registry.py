"""The engine registry: specs open registered engines; unknown and incomplete specs are clear errors."""

from __future__ import annotations

import pytest

import edpilot.engine
from edpilot.engine import EngineOptions, engine_kinds, open_engine, register_engine
from edpilot.errors import ConfigError


class Recorder:
    name = "recorder"
    needs_warmup = False

    def __init__(self, arg, options, device):
        self.arg, self.options, self.device = arg, options, device

    def generate(self, batch):
        return []

    def describe(self):
        return {"backend": "recorder", "model": self.arg}

    def close(self):
        pass


def test_a_registered_engine_gets_its_argument_options_and_device(monkeypatch):
    monkeypatch.setattr(edpilot.engine, "_OPENERS", dict(edpilot.engine._OPENERS))  # unregistered afterwards
    register_engine("recorder", Recorder, usage="recorder:NAME")
    device = object()
    engine = open_engine("recorder:x:y", EngineOptions(threads=3), device)
    assert (engine.arg, engine.options.threads, engine.device) == ("x:y", 3, device)
    assert open_engine("recorder:z").device is None  # callers that pass no device still work
    assert "recorder:NAME" in engine_kinds()


def test_builtin_kinds_and_unknown_specs():
    assert {"hf:PATH_OR_PRESET", "openai:URL", "llamacpp:FILE.gguf|gemma-3-270m"} <= set(engine_kinds())
    with pytest.raises(ConfigError, match="unknown engine 'vllm:x'; choose one of: .*openai:URL"):
        open_engine("vllm:x")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threads": 0}, "--threads"),
        ({"gpu_layers": -1}, "--gpu-layers"),
        ({"request_timeout_s": -1}, "timeout"),
        ({"request_timeout_s": float("inf")}, "timeout"),
        ({"model_name": " "}, "--model-name"),
    ],
)
def test_options_are_validated(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        EngineOptions(**kwargs)
