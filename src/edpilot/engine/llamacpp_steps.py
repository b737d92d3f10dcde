"""Continuous batching in llama.cpp: sequences join and leave one context at step boundaries.

One context holds up to `MAX_RUNNING` sequences in a unified KV cache of `CACHE_TOKENS` cells, so memory follows the
tokens in flight, not the slot count. Each step is one `llama_decode` (more when the prompts that join it exceed
the batch size): one token of every running sequence, then the whole prompt of each sequence that joins (its first
token comes from that step). A joiner whose prompt plus output would not fit in the free cells waits inside the
engine until a sequence ends. A finished or cancelled sequence's cells are freed at once (`llama_memory_seq_rm`).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edpilot.engine.base import Completion, Step
from edpilot.errors import EngineError
from edpilot.workload import Request

if TYPE_CHECKING:
    from edpilot.engine.llamacpp import LlamaCppEngine

MAX_RUNNING = 64  # sequence ids of the continuous context
CACHE_TOKENS = 16384  # KV cells shared by the running sequences


@dataclass
class _Sequence:
    request: Request
    joined_s: float
    seq: int = -1
    prompt: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    first_s: float | None = None
    text: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    @property
    def reserved_tokens(self) -> int:
        return len(self.prompt) + self.request.max_new_tokens


class SequenceSlots:
    """The iteration-level side of `LlamaCppEngine`: add, step, running, cancel."""

    def __init__(self, engine: LlamaCppEngine) -> None:
        self.engine = engine
        self._ctx: Any = None
        self._joining: list[_Sequence] = []
        self._running: list[_Sequence] = []
        self._cancelled: set[int] = set()

    def add(self, request: Request) -> None:
        """Queue a request to join at the next step (or the first after it with room in the cache)."""
        q = _Sequence(request, self.engine.clock.now_s(), prompt=self.engine.tokenize(request.prompt))
        if q.reserved_tokens > min(CACHE_TOKENS, self.engine.n_ctx_train):
            raise EngineError(f"prompt + output tokens ({q.reserved_tokens}) exceed the continuous context")
        self._joining.append(q)

    def running(self) -> int:
        """Sequences added and not finished."""
        return len(self._joining) + len(self._running)

    def cancel(self, request_id: int) -> None:
        """The request leaves, failed, at the next step."""
        self._cancelled.add(request_id)

    def step(self) -> Step:
        """One decode step of the running sequences, with the prompts of those that join it."""
        lib, engine = self.engine.lib, self.engine
        memory = lib.llama_get_memory(self._context())
        finished: dict[int, Completion] = {}
        for q in [*self._joining, *self._running]:
            if q.request.request_id in self._cancelled:
                finished[q.request.request_id] = Completion("", len(q.tokens), error="cancelled: the client went away")
                if q.seq >= 0:
                    lib.llama_memory_seq_rm(memory, q.seq, -1, -1)
        self._cancelled.clear()
        self._joining = [q for q in self._joining if q.request.request_id not in finished]
        self._running = [q for q in self._running if q.request.request_id not in finished]
        joining = self._admit()
        entries = [(q.seq, len(q.prompt) + len(q.tokens) - 1, q.tokens[-1], True) for q in self._running]
        for q in joining:
            entries += [(q.seq, pos, tok, pos == len(q.prompt) - 1) for pos, tok in enumerate(q.prompt)]
        if not entries:
            return Step({}, finished)
        order = [*self._running, *joining]  # rows with logits, in entry order
        tokens = engine.decode_entries(self._ctx, entries)
        self._running += joining
        now_s = engine.clock.now_s()
        text: dict[int, str] = {}
        for q, tok in zip(order, tokens):
            q.tokens.append(tok)
            rid = q.request.request_id
            if q.first_s is None:
                q.first_s = now_s - q.joined_s
            eog = engine.is_eog(tok)
            if not eog:
                text[rid] = q.text.decode(engine.piece(tok))
            if eog or len(q.tokens) >= q.request.max_new_tokens:
                finished[rid] = engine.completion(q.tokens, q.first_s, now_s - q.joined_s)
                lib.llama_memory_seq_rm(memory, q.seq, -1, -1)
        self._running = [q for q in self._running if q.request.request_id not in finished]
        return Step(text, finished)

    def close(self) -> None:
        """Free the continuous context."""
        if self._ctx is not None:
            self.engine.lib.llama_free(self._ctx)
            self._ctx = None

    def _admit(self) -> list[_Sequence]:
        """Joiners that fit (FIFO: one that does not fit holds the ones behind it), with free sequence ids."""
        used = {q.seq for q in self._running}
        reserved = sum(q.reserved_tokens for q in self._running)
        admitted: list[_Sequence] = []
        while self._joining and len(used) < MAX_RUNNING:
            q = self._joining[0]
            if reserved + q.reserved_tokens > CACHE_TOKENS:
                break
            q.seq = min(set(range(MAX_RUNNING)) - used)
            used.add(q.seq)
            reserved += q.reserved_tokens
            admitted.append(self._joining.pop(0))
        return admitted

    def _context(self) -> Any:
        if self._ctx is None:
            self._ctx = self.engine.new_context(sequences=MAX_RUNNING, cells=CACHE_TOKENS, unified=True)
        return self._ctx
