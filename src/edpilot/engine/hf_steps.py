"""Continuous batching in transformers: sequences join and leave the running batch at step boundaries.

A request that joins is prefilled alone (its prompt, no padding) in the step it joins, which gives its first
token and its own KV cache. The running sequences decode together from one packed cache — each row left-padded to
the longest, with an attention mask over the padding and each row's own positions — that grows by one token a
step. When the membership changes, only the rows that change move: a sequence that finishes or is cancelled takes
its row out (and the columns that are padding in every row go), and a joiner's own cache is padded onto the batch
as a new row. Decoding is greedy, so a sequence's output is the one it gets alone.

Steps decode eagerly (`compiled` applies to static batches: a static cache and CUDA graphs need fixed shapes). Models
whose cache keeps a sliding window (Gemma 3) are refused: their per-layer lengths differ from the mask's.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edpilot.clock import WallClock
from edpilot.engine.base import Completion, Step
from edpilot.errors import ConfigError, EngineError
from edpilot.workload import Request

if TYPE_CHECKING:
    from edpilot.engine.hf import HfEngine

Layers = list[tuple[Any, Any]]  # one (keys, values) pair per layer, each [1, heads, tokens, head_dim]


@dataclass
class _Sequence:
    request: Request
    joined_s: float
    prompt: list[int]
    tokens: list[int] = field(default_factory=list)
    cache: Layers = field(default_factory=list)  # its own KV cache, from its prefill until it joins the batch
    first_s: float | None = None
    sent: str = ""

    @property
    def cached_tokens(self) -> int:
        """Tokens in its KV cache: the prompt and every output token but the last (which the next step feeds)."""
        return len(self.prompt) + len(self.tokens) - 1


class HfSequences:
    """The iteration-level side of `HfEngine`: add, step, running, cancel."""

    def __init__(self, engine: HfEngine) -> None:
        self.engine, self.clock = engine, WallClock()
        self._joining: list[_Sequence] = []
        self._running: list[_Sequence] = []
        self._cancelled: set[int] = set()
        self._packed: Any = None  # the running batch's cache; None: the sequences hold their own
        self._mask: Any = None
        self._cache_kwarg = "cache" if "cache" in inspect.signature(engine.model.forward).parameters else None

    def add(self, request: Request) -> None:
        """Queue a request to join at the next step."""
        prompt = self.engine.tokenizer(request.prompt)["input_ids"]
        if not prompt:
            raise EngineError("an empty prompt cannot be decoded")
        self._joining.append(_Sequence(request, self.clock.now_s(), list(prompt)))

    def running(self) -> int:
        """Sequences added and not finished."""
        return len(self._joining) + len(self._running)

    def cancel(self, request_id: int) -> None:
        """The request leaves, failed, at the next step."""
        self._cancelled.add(request_id)

    def step(self) -> Step:
        """One decode step of the running sequences; the sequences that join it are prefilled (their first token)."""
        finished = self._drop_cancelled()
        joining, self._joining = self._joining, []
        text: dict[int, str] = {}
        try:
            with self.engine.torch.inference_mode():
                if self._running:
                    for q, token in zip(self._running, self._decode()):
                        self._emit(q, token, text, finished)
                for q in joining:
                    self._emit(q, self._prefill(q), text, finished)
        except RuntimeError as exc:
            raise EngineError(f"generation failed: {str(exc).splitlines()[0]}") from None
        self._leave(finished)
        self._join([q for q in joining if q.request.request_id not in finished])
        return Step(text, finished)

    def _drop_cancelled(self) -> dict[int, Completion]:
        gone = {q.request.request_id for q in [*self._joining, *self._running]} & self._cancelled
        self._cancelled.clear()
        self._joining = [q for q in self._joining if q.request.request_id not in gone]
        self._leave(gone)
        return {rid: Completion("", 0, error="cancelled: the client went away") for rid in gone}

    def _prefill(self, q: _Sequence) -> int:
        """The prompt alone through the model: its cache, and the first token."""
        torch = self.engine.torch
        ids = torch.tensor([q.prompt], device=self.engine.device)
        out = self._forward(input_ids=ids, attention_mask=torch.ones_like(ids))
        q.cache = self._layers(self._out_cache(out))
        return int(out.logits[0, -1].argmax())

    def _decode(self) -> list[int]:
        """One token of every running sequence, through the packed cache (packed first if membership changed)."""
        torch = self.engine.torch
        device = self.engine.device
        ids = torch.tensor([[q.tokens[-1]] for q in self._running], device=device)
        positions = torch.tensor([[q.cached_tokens] for q in self._running], device=device)
        self._mask = torch.cat([self._mask, torch.ones_like(ids)], dim=1)
        out = self._forward(input_ids=ids, attention_mask=self._mask, position_ids=positions, cache=self._packed)
        self._packed = self._out_cache(out)
        return [int(t) for t in out.logits[:, -1].argmax(dim=-1).tolist()]

    def _emit(self, q: _Sequence, token: int, text: dict[int, str], finished: dict[int, Completion]) -> None:
        """Append a sequence's new token, stream its new text, and finish it at its length (or EOS)."""
        engine, rid = self.engine, q.request.request_id
        q.tokens.append(token)
        now_s = self.clock.now_s() - q.joined_s
        if q.first_s is None:
            q.first_s = now_s
        answer = engine.answer_tokens(q.tokens)
        decoded = engine.decode(answer)
        done = len(answer) < len(q.tokens) or len(q.tokens) >= q.request.max_new_tokens
        # a piece that ends inside a character waits for the rest of it, unless the answer ends here
        if decoded.startswith(q.sent) and len(decoded) > len(q.sent) and (done or not decoded.endswith("\ufffd")):
            text[rid], q.sent = decoded[len(q.sent) :], decoded
        if done:
            finished[rid] = Completion(decoded, len(answer), ttft_s=q.first_s, last_token_s=now_s)

    def _leave(self, ids: set[int] | dict[int, Completion]) -> None:
        """The sequences `ids` leave: their rows out of the packed cache (the others' rows kept as they are), and
        the leading columns that are padding in every row left trimmed off."""
        keep = [i for i, q in enumerate(self._running) if q.request.request_id not in ids]
        if len(keep) == len(self._running):
            return
        self._running = [self._running[i] for i in keep]
        if not keep:
            self._packed = self._mask = None
            return
        torch = self.engine.torch
        rows = torch.tensor(keep, device=self.engine.device)
        trim = self._mask.shape[1] - max(q.cached_tokens for q in self._running)
        self._packed = self._new_cache([(k[rows, :, trim:], v[rows, :, trim:]) for k, v in self._layers(self._packed)])
        self._mask = self._mask[rows, trim:]

    def _join(self, joining: list[_Sequence]) -> None:
        """Prefilled sequences join the running ones: each its own cache, left-padded, as one more row of the packed
        cache (the packed rows padded on the left when a joiner is longer, and none yet when nothing runs)."""
        if not joining:
            return
        torch = self.engine.torch
        pad = torch.nn.functional.pad
        packed = [] if self._packed is None else self._layers(self._packed)
        width = 0 if self._mask is None else self._mask.shape[1]
        longest = max(width, *(q.cached_tokens for q in joining))
        layers = []
        for layer in range(len(joining[0].cache)):
            keys = [pad(packed[layer][0], (0, 0, longest - width, 0))] if packed else []
            values = [pad(packed[layer][1], (0, 0, longest - width, 0))] if packed else []
            for q in joining:
                qk, qv = q.cache[layer]
                keys.append(pad(qk, (0, 0, longest - qk.shape[2], 0)))
                values.append(pad(qv, (0, 0, longest - qv.shape[2], 0)))
            layers.append((torch.cat(keys), torch.cat(values)))
        self._packed = self._new_cache(layers)
        rows = torch.tensor(
            [[0] * (longest - q.cached_tokens) + [1] * q.cached_tokens for q in joining], device=self.engine.device
        )
        self._mask = rows if self._mask is None else torch.cat([pad(self._mask, (longest - width, 0)), rows])
        for q in joining:
            q.cache = []
        self._running += joining

    def _forward(self, *, cache: Any = None, **inputs: Any) -> Any:
        if cache is not None:
            inputs[self._cache_kwarg or "past_key_values"] = cache
        return self.engine.model(**inputs, use_cache=True)

    def _out_cache(self, out: Any) -> Any:
        return out.cache if self._cache_kwarg else out.past_key_values

    def _layers(self, cache: Any) -> Layers:
        """(keys, values) per layer of a transformers cache; a sliding-window cache is refused."""
        if any(getattr(cache, "is_sliding", None) or []):
            raise ConfigError(
                f"{self.engine.model_name} keeps a sliding-window cache, which hf continuous batching does not "
                "re-pack; use --batching static, or --engine llamacpp for continuous batching"
            )
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _new_cache(self, layers: Layers) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.engine.model.config)
        for i, (k, v) in enumerate(layers):
            cache.update(k, v, i)
        return cache
