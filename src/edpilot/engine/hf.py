"""`--engine hf:PATH_OR_PRESET`: in-process batched generation with transformers (extra `[hf]`).

Left padding, greedy decoding, per-batch TTFT; each step's tokens are decoded and handed to `on_token` as they
come; `fixed_output_length` ignores EOS so every request decodes exactly its max_new_tokens. Continuous batching
(`add`, `step`: the `SequenceEngine` interface) is in `hf_steps`.
On CUDA, `compiled=True` decodes with a static KV cache and
torch.compile (CUDA graphs), which removes the per-token launch overhead of eager decoding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edpilot.architectures import ARCHITECTURES
from edpilot.clock import WallClock
from edpilot.engine.base import Completion, DecodeHook, Step, TokenSink
from edpilot.engine.hf_presets import GEMMA_PRESET, build_preset, gemma_gguf_path, load_pretrained
from edpilot.engine.hf_steps import HfSequences
from edpilot.errors import ConfigError, EngineError
from edpilot.workload import Request

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
COMPILED_PAD_MULTIPLE = 256  # one prompt-length bucket covers typical prompts: one compiled graph per batch size


def _torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise EngineError("the hf engine needs torch and transformers: pip install 'edpilot[hf]'") from None
    return torch


class HfEngine:
    """A transformers causal LM generating static batches."""

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        fixed_output_length: bool = True,
        compiled: bool = False,
        seed: int = 0,
    ) -> None:
        torch = _torch()
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError("CUDA was asked for but torch sees no GPU; use --torch-device cpu")
        dtype = dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
        if compiled and not self.device.startswith("cuda"):
            raise ConfigError("the compiled decode path needs CUDA (--torch-device cuda)")
        self.dtype_name, self.compiled, self.fixed_output_length = dtype, compiled, fixed_output_length
        # The first batch of each shape compiles (compiled), or is 4-7 s slow on CUDA even eager (measured on an
        # H100): keep it out of measurements.
        self.needs_warmup = compiled or self.device.startswith("cuda")
        torch_dtype = getattr(torch, dtype)
        self.model_name = model
        if model in ARCHITECTURES:
            self.model, self.tokenizer = build_preset(model, dtype=torch_dtype, device=self.device, seed=seed)
            self.weights = "random"
        else:
            path = gemma_gguf_path() if model == GEMMA_PRESET else Path(model)
            self.model, self.tokenizer = load_pretrained(path, dtype=torch_dtype, device=self.device)
            self.weights = str(path)
        self.model.eval()
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self._sequences: HfSequences | None = None

    def generate(
        self, batch: Sequence[Request], on_token: TokenSink | None = None, *, on_decode: DecodeHook | None = None
    ) -> list[Completion]:
        """Greedy-decode the batch together, streaming each step's text; each request stops at its max_new_tokens.

        `on_decode` runs once the prefill's tokens are out, before the first decode step's forward pass."""
        if self.model is None:
            raise EngineError("the hf engine is closed")
        torch = self.torch
        max_new = max(r.max_new_tokens for r in batch)
        # The compiled path pads prompts to a multiple of 256 tokens so that shapes, and so compiled graphs, repeat.
        pad_multiple = COMPILED_PAD_MULTIPLE if self.compiled else None
        inputs = self.tokenizer(
            [r.prompt for r in batch], return_tensors="pt", padding=True, pad_to_multiple_of=pad_multiple
        ).to(self.device)
        timer = StepStreamer(self, batch, on_token, on_decode=on_decode if max_new > 1 else None)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new,
            do_sample=False,
            streamer=timer,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if self.fixed_output_length:
            kwargs["min_new_tokens"] = max_new
        if self.compiled:
            kwargs["cache_implementation"] = "static"
        else:
            kwargs["disable_compile"] = True
        timer.start()
        with torch.inference_mode():
            try:
                out = self.model.generate(**inputs, **kwargs)
            except RuntimeError as exc:
                raise EngineError(f"generation failed: {str(exc).splitlines()[0]}") from None
        new_tokens = out[:, inputs["input_ids"].shape[1] :].tolist()  # .tolist() waits for the GPU
        return [
            self._completion(tokens[: r.max_new_tokens], timer.ttft_s, timer.last_token_s[i])
            for i, (r, tokens) in enumerate(zip(batch, new_tokens))
        ]

    # --- continuous batching (SequenceEngine): sequences join and leave at step boundaries (hf_steps) ---
    def add(self, request: Request) -> None:
        """Queue `request` to join the running sequences at the next step (which prefills it)."""
        if self.model is None:
            raise EngineError("the hf engine is closed")
        self._steps().add(request)

    def step(self) -> Step:
        """One decode step of every running sequence."""
        return self._steps().step()

    def running(self) -> int:
        """Sequences added and not yet finished."""
        return 0 if self._sequences is None else self._sequences.running()

    def cancel(self, request_id: int) -> None:
        """The request leaves, failed, at the next step."""
        self._steps().cancel(request_id)

    def wake(self) -> None:
        """A step never waits on anything outside: nothing to wake."""

    def _steps(self) -> HfSequences:
        if self._sequences is None:
            self._sequences = HfSequences(self)
        return self._sequences

    def answer_tokens(self, tokens: list[int]) -> list[int]:
        """The tokens that are output: up to (not including) EOS unless the length is fixed."""
        eos = self.tokenizer.eos_token_id
        if not self.fixed_output_length and eos in tokens:
            return tokens[: tokens.index(eos)]
        return tokens

    def decode(self, tokens: list[int]) -> str:
        """Text of output tokens (ids past the tokenizer's vocabulary, padding rows of the embedding, dropped)."""
        vocab = len(self.tokenizer)
        text: str = self.tokenizer.decode([t for t in tokens if t < vocab], skip_special_tokens=True)
        return text

    def _completion(self, tokens: list[int], ttft_s: float | None, last_token_s: float | None) -> Completion:
        tokens = self.answer_tokens(tokens)
        return Completion(text=self.decode(tokens), output_tokens=len(tokens), ttft_s=ttft_s, last_token_s=last_token_s)

    def describe(self) -> dict[str, object]:
        """Model, weights, device, dtype and decode path for the run log."""
        return {
            "backend": "hf",
            "model": self.model_name,
            "weights": self.weights,
            "device": self.device,
            "dtype": self.dtype_name,
            "decode": "compiled (static cache, CUDA graphs)" if self.compiled else "eager",
            "fixed_output_length": self.fixed_output_length,
            "parameters": self.parameters,
        }

    def close(self) -> None:
        """Drop the model and give CUDA memory back; idempotent."""
        self.model = self._sequences = None
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()


class StepStreamer:
    """A generate() streamer: stamps TTFT and each request's last token, and hands on each step's new text.

    generate() calls `put` between forward passes, so `on_decode` called after the prefill's tokens runs before
    the first decode step.

    Text is decoded from all of a request's tokens so far and the new suffix sent, so pieces that only make a
    character together (byte tokens) come out whole.
    """

    def __init__(
        self,
        engine: HfEngine,
        batch: Sequence[Request],
        on_token: TokenSink | None,
        *,
        on_decode: DecodeHook | None = None,
    ) -> None:
        self.engine, self.batch, self.on_token, self.on_decode = engine, batch, on_token, on_decode
        self.clock = WallClock()
        self._calls = 0
        self._start_s = 0.0
        self.ttft_s: float | None = None
        self.last_token_s: list[float | None] = [None] * len(batch)
        self._tokens: list[list[int]] = [[] for _ in batch]
        self._sent: list[str] = [""] * len(batch)

    def start(self) -> None:
        """Mark the batch start."""
        self._start_s = self.clock.now_s()

    def put(self, value: Any) -> None:
        """Called with the prompt first, then with each step's new tokens (one per request)."""
        self._calls += 1
        if self._calls == 1:
            return
        step = value.reshape(-1).tolist()  # waits for the GPU
        now_s = self.clock.now_s() - self._start_s
        if self._calls == 2:
            self.ttft_s = now_s
        for i, (request, token) in enumerate(zip(self.batch, step)):
            tokens = self._tokens[i]
            if len(tokens) >= request.max_new_tokens or len(self.engine.answer_tokens(tokens)) < len(tokens):
                continue  # this request is done (its length, or EOS) and only pads the batch now
            tokens.append(token)
            if len(self.engine.answer_tokens(tokens)) < len(tokens):
                continue
            self.last_token_s[i] = now_s
            if self.on_token is not None:
                text = self.engine.decode(tokens)
                if text.startswith(self._sent[i]) and len(text) > len(self._sent[i]) and not text.endswith("\ufffd"):
                    self.on_token(i, text[len(self._sent[i]) :])
                    self._sent[i] = text
        if self._calls == 2 and self.on_decode is not None:
            self.on_decode()

    def end(self) -> None:
        """Called when generation ends."""
