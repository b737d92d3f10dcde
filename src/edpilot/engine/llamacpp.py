"""`--engine llamacpp:FILE.gguf|gemma-3-270m`: llama.cpp in process through llama-cpp-python (extra `[llamacpp]`).

A static batch of b requests is decoded together, as the paper's batch size means: every prompt goes into one
llama.cpp batch with its own sequence id (prefill), then each step decodes one token of every unfinished sequence
in one `llama_decode` call, in a context whose KV cache holds b sequences. Each step's tokens go to `on_token` as
text (whole UTF-8 characters). Greedy decoding (argmax of the logits), `fixed_output_length` ignores
end-of-generation tokens, TTFT and last-token time per request. Contexts are kept per batch size, so the
first batch of a new size allocates one (`needs_warmup`).
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edpilot.clock import WallClock
from edpilot.engine.base import Completion, DecodeHook, Step, TokenSink
from edpilot.engine.hf_presets import GEMMA_PRESET, gemma_gguf_path
from edpilot.engine.llamacpp_info import build_backends, gguf_quantisation, llama_cpp_module, model_meta
from edpilot.engine.llamacpp_steps import SequenceSlots
from edpilot.errors import ConfigError, EngineError
from edpilot.workload import Request

log = logging.getLogger(__name__)

MAX_SEQUENCES = 256  # LLAMA_MAX_SEQ in llama.cpp: sequences one context can hold
PREFILL_CHUNK_TOKENS = 2048  # prompt tokens per llama_decode call (n_batch)
CTX_ROUND_TOKENS = 256  # per-sequence context is rounded up to this, so nearby lengths share a context
MAX_CONTEXTS = 4  # contexts (KV caches) kept for recently used batch sizes
ALL_LAYERS = 999  # llama.cpp's convention for "offload every layer"


@dataclass
class _Context:
    ctx: Any
    sequences: int
    tokens_per_sequence: int


class LlamaCppEngine:
    """A GGUF model in llama.cpp, decoding static batches with one sequence per request."""

    name = "llamacpp"
    needs_warmup = True  # the first batch of each size allocates its context (KV cache, compute buffers)

    def __init__(
        self,
        model: str,
        *,
        threads: int | None = None,
        gpu_layers: int | None = None,
        fixed_output_length: bool = True,
    ) -> None:
        self.lib = llama_cpp_module()
        self.path = gemma_gguf_path() if model == GEMMA_PRESET else Path(model).expanduser()
        if not self.path.is_file():
            raise EngineError(f"no GGUF file at {self.path}: give llamacpp:FILE.gguf or llamacpp:{GEMMA_PRESET}")
        self.backends = build_backends(self.lib)
        can_offload = bool(self.lib.llama_supports_gpu_offload())
        if gpu_layers and not can_offload:
            raise ConfigError(
                "--gpu-layers needs a llama.cpp build with a GPU backend; this one is CPU only "
                "(reinstall with CMAKE_ARGS='-DGGML_CUDA=on', see docs/engines.md)"
            )
        self.gpu_layers = gpu_layers if gpu_layers is not None else (ALL_LAYERS if can_offload else 0)
        self.threads = threads or len(os.sched_getaffinity(0))
        self.fixed_output_length = fixed_output_length
        params = self.lib.llama_model_default_params()
        params.n_gpu_layers = self.gpu_layers
        self._model = self.lib.llama_model_load_from_file(str(self.path).encode(), params)
        if not self._model:
            raise EngineError(f"llama.cpp could not load {self.path} (not a GGUF file, or an unknown architecture)")
        self._vocab = self.lib.llama_model_get_vocab(self._model)
        self.n_vocab = self.lib.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train = self.lib.llama_model_n_ctx_train(self._model)
        self.n_layers = self.lib.llama_model_n_layer(self._model)
        self._contexts: OrderedDict[int, _Context] = OrderedDict()
        self.clock = WallClock()
        self._slots = SequenceSlots(self)

    def add(self, request: Request) -> None:
        """Continuous batching: `request` joins the running sequences at the next step."""
        if self._model is None:
            raise EngineError("the llamacpp engine is closed")
        self._slots.add(request)

    def step(self) -> Step:
        """One `llama_decode` step of every running sequence, prefilling those that join."""
        return self._slots.step()

    def running(self) -> int:
        """Sequences added and not finished."""
        return self._slots.running()

    def cancel(self, request_id: int) -> None:
        """The request leaves, failed, at the next step."""
        self._slots.cancel(request_id)

    def wake(self) -> None:
        """Steps never wait for input: nothing to wake."""

    def decode_entries(self, ctx: Any, entries: list[tuple[int, int, int, bool]]) -> list[int]:
        """Decode (sequence, position, token, wants logits) entries in chunks; the argmax token of each logits row."""
        lb = self.lib.llama_batch_init(max(PREFILL_CHUNK_TOKENS, len(entries)), 0, 1)
        out: list[int] = []
        try:
            for at in range(0, len(entries), PREFILL_CHUNK_TOKENS):
                chunk = entries[at : at + PREFILL_CHUNK_TOKENS]
                self._decode(ctx, lb, chunk)
                rows = sum(e[3] for e in chunk)
                if rows:
                    logits = np.ctypeslib.as_array(self.lib.llama_get_logits(ctx), shape=(rows, self.n_vocab))
                    out += logits.argmax(axis=1).tolist()
        finally:
            self.lib.llama_batch_free(lb)
        return out

    def generate(
        self, batch: Sequence[Request], on_token: TokenSink | None = None, *, on_decode: DecodeHook | None = None
    ) -> list[Completion]:
        """Greedy-decode the batch together, one llama.cpp sequence per request, streaming each step's text;
        `on_decode` runs after the prefill's `llama_decode` calls, before the first decode step's."""
        if self._model is None:
            raise EngineError("the llamacpp engine is closed")
        lib, b = self.lib, len(batch)
        if not 0 < b <= MAX_SEQUENCES:
            raise ConfigError(f"llama.cpp decodes 1 to {MAX_SEQUENCES} sequences at once, not {b}")
        prompts = [self.tokenize(r.prompt) for r in batch]
        need = max(len(p) + r.max_new_tokens for p, r in zip(prompts, batch))
        if need > self.n_ctx_train:
            raise EngineError(f"prompt + output tokens ({need}) exceed the model's context ({self.n_ctx_train})")
        ctx = self._context(b, need).ctx
        lib.llama_memory_clear(lib.llama_get_memory(ctx), True)
        tokens: list[list[int]] = [[] for _ in batch]
        ttft_s: list[float | None] = [None] * b
        last_s: list[float | None] = [None] * b
        texts = [codecs.getincrementaldecoder("utf-8")("replace") for _ in batch]
        done = [r.max_new_tokens <= 0 for r in batch]

        def stream(seqs: list[int]) -> None:
            now_s = self.clock.now_s() - start_s
            for seq in seqs:
                last_s[seq] = now_s
                if ttft_s[seq] is None:
                    ttft_s[seq] = now_s
                if on_token is not None and not self.is_eog(tokens[seq][-1]):
                    on_token(seq, texts[seq].decode(self.piece(tokens[seq][-1])))

        lb = lib.llama_batch_init(max(PREFILL_CHUNK_TOKENS, b), 0, 1)
        try:
            start_s = self.clock.now_s()
            flat = [(seq, pos, tok) for seq, p in enumerate(prompts) for pos, tok in enumerate(p) if not done[seq]]
            for at in range(0, len(flat), PREFILL_CHUNK_TOKENS):
                chunk = flat[at : at + PREFILL_CHUNK_TOKENS]
                ends = [seq for seq, pos, _ in chunk if pos == len(prompts[seq]) - 1]
                self._decode(ctx, lb, [(seq, pos, tok, pos == len(prompts[seq]) - 1) for seq, pos, tok in chunk])
                self._take(ctx, ends, tokens, done, batch)
                stream(ends)
            if on_decode is not None and not all(done):
                on_decode()
            while not all(done):
                active = [seq for seq in range(b) if not done[seq]]
                step = [(seq, len(prompts[seq]) + len(tokens[seq]) - 1, tokens[seq][-1], True) for seq in active]
                self._decode(ctx, lb, step)
                self._take(ctx, active, tokens, done, batch)
                stream(active)
        finally:
            lib.llama_batch_free(lb)
        return [self.completion(t, ttft, last) for t, ttft, last in zip(tokens, ttft_s, last_s)]

    def _decode(self, ctx: Any, lb: Any, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (sequence, position, token, wants logits) entries."""
        for i, (seq, pos, tok, wants_logits) in enumerate(entries):
            lb.token[i], lb.pos[i], lb.n_seq_id[i], lb.logits[i] = tok, pos, 1, wants_logits
            lb.seq_id[i][0] = seq
        lb.n_tokens = len(entries)
        rc = self.lib.llama_decode(ctx, lb)
        if rc != 0:
            raise EngineError(f"llama_decode failed with code {rc} ({len(entries)} tokens)")

    def _take(self, ctx: Any, seqs: list[int], tokens: list[list[int]], done: list[bool], batch: Any) -> None:
        """Append the argmax token of each output row (in batch order) to its sequence; mark finished ones."""
        if not seqs:
            return
        logits = np.ctypeslib.as_array(self.lib.llama_get_logits(ctx), shape=(len(seqs), self.n_vocab))
        for seq, tok in zip(seqs, logits.argmax(axis=1).tolist()):
            tokens[seq].append(tok)
            done[seq] = self.is_eog(tok) or len(tokens[seq]) >= batch[seq].max_new_tokens

    def is_eog(self, tok: int) -> bool:
        """Whether `tok` ends the answer (never when the output length is fixed)."""
        return not self.fixed_output_length and bool(self.lib.llama_vocab_is_eog(self._vocab, tok))

    def _context(self, sequences: int, tokens_needed: int) -> _Context:
        """A context with a KV cache for `sequences` sequences of at least `tokens_needed` tokens each."""
        held = self._contexts.get(sequences)
        if held is not None and held.tokens_per_sequence >= tokens_needed:
            self._contexts.move_to_end(sequences)
            return held
        if held is not None:
            self.lib.llama_free(self._contexts.pop(sequences).ctx)
        per_seq = -(-tokens_needed // CTX_ROUND_TOKENS) * CTX_ROUND_TOKENS
        ctx = self.new_context(sequences=sequences, cells=per_seq * sequences, unified=False)
        self._contexts[sequences] = _Context(ctx, sequences, per_seq)
        while len(self._contexts) > MAX_CONTEXTS:
            self.lib.llama_free(self._contexts.popitem(last=False)[1].ctx)
        return self._contexts[sequences]

    def new_context(self, *, sequences: int, cells: int, unified: bool) -> Any:
        """A llama.cpp context of `cells` KV cells for `sequences` sequences: split evenly, or one shared pool."""
        params = self.lib.llama_context_default_params()
        params.n_ctx = cells
        params.n_seq_max = sequences
        params.n_batch = max(PREFILL_CHUNK_TOKENS, sequences)
        params.n_threads = params.n_threads_batch = self.threads
        params.kv_unified = unified
        ctx = self.lib.llama_init_from_model(self._model, params)
        if not ctx:
            raise EngineError(f"llama.cpp could not allocate a context of {cells} cells for {sequences} sequences")
        return ctx

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        buf = (self.lib.llama_token * (len(data) + 8))()
        n = self.lib.llama_tokenize(self._vocab, data, len(data), buf, len(buf), True, True)  # chat markup: special
        if n < 0:
            raise EngineError(f"could not tokenize a prompt of {len(data)} bytes")
        return list(buf[:n])

    def piece(self, tok: int) -> bytes:
        """The bytes of one token's text (part of a UTF-8 character, possibly)."""
        buf = ctypes.create_string_buffer(256)
        n = self.lib.llama_token_to_piece(self._vocab, tok, buf, len(buf), 0, False)
        return buf.raw[: max(n, 0)]

    def completion(self, tokens: list[int], ttft_s: float | None, last_token_s: float | None) -> Completion:
        if tokens and self.is_eog(tokens[-1]):
            tokens = tokens[:-1]  # the end-of-generation token is not output
        text = b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")
        return Completion(text, len(tokens), ttft_s, last_token_s=last_token_s)

    def describe(self) -> dict[str, object]:
        """GGUF file, quantisation, the build's backends, where layers run, threads, decode settings."""
        on_gpu = min(self.gpu_layers, self.n_layers + 1) if self.gpu_layers else 0
        return {
            "backend": "llamacpp",
            "model": self.path.name,
            "gguf": str(self.path),
            "model_desc": model_meta(self.lib, self._model, None),
            "quantisation": gguf_quantisation(self.lib, self._model),
            "build": ", ".join(self.backends),
            "device": "CPU" if on_gpu == 0 else f"{self.backends[0]} ({on_gpu} layers offloaded)",
            "threads": self.threads,
            "decode": "greedy, one sequence per request",
            "fixed_output_length": self.fixed_output_length,
            "llama_cpp_python": getattr(self.lib, "__version__", "unknown"),
        }

    def close(self) -> None:
        """Free every context and the model; idempotent."""
        self._slots.close()
        while self._contexts:
            self.lib.llama_free(self._contexts.popitem()[1].ctx)
        if self._model is not None:
            self.lib.llama_model_free(self._model)
            self._model = None
