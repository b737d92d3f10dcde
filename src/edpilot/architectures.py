"""Published architecture values of the models edpilot knows by name.

Sources: each model's `config.json` on the Hugging Face Hub (meta-llama/Llama-3.2-1B, Qwen/Qwen2.5-3B,
Qwen/Qwen2.5-0.5B). `tiny` is edpilot's own test model. The simulator derives parameter, FLOP and byte
counts from these; the `hf` engine builds the same architectures with random weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from edpilot.errors import ConfigError


@dataclass(frozen=True)
class ModelArch:
    """Decoder-only transformer shape (Llama/Qwen2 family)."""

    name: str
    family: str  # "llama" or "qwen2"
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    qkv_bias: bool
    rope_theta: float
    max_position_embeddings: int

    @property
    def layer_params(self) -> int:
        """Weights of one decoder layer (attention, MLP, two norms)."""
        h, q, kv = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        attn = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.qkv_bias else 0)
        return attn + 3 * h * self.intermediate_size + 2 * h

    @property
    def embedding_params(self) -> int:
        """Token embedding table."""
        return self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        """All weights, counting a tied LM head once."""
        head = 0 if self.tied_embeddings else self.embedding_params
        return self.embedding_params + self.num_layers * self.layer_params + self.hidden_size + head

    @property
    def matmul_params_per_token(self) -> int:
        """Weights multiplied per generated token: every layer plus the LM head (embedding lookup is free)."""
        return self.num_layers * self.layer_params + self.embedding_params

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of K and V cache one token adds, at 16-bit precision."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * 2


ARCHITECTURES: dict[str, ModelArch] = {
    "llama-3.2-1b": ModelArch(
        name="llama-3.2-1b",
        family="llama",
        hidden_size=2048,
        intermediate_size=8192,
        num_layers=16,
        num_heads=32,
        num_kv_heads=8,
        head_dim=64,
        vocab_size=128256,
        tied_embeddings=True,
        qkv_bias=False,
        rope_theta=500000.0,
        max_position_embeddings=131072,
    ),
    "qwen2.5-3b": ModelArch(
        name="qwen2.5-3b",
        family="qwen2",
        hidden_size=2048,
        intermediate_size=11008,
        num_layers=36,
        num_heads=16,
        num_kv_heads=2,
        head_dim=128,
        vocab_size=151936,
        tied_embeddings=True,
        qkv_bias=True,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
    ),
    "qwen2.5-0.5b": ModelArch(
        name="qwen2.5-0.5b",
        family="qwen2",
        hidden_size=896,
        intermediate_size=4864,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        head_dim=64,
        vocab_size=151936,
        tied_embeddings=True,
        qkv_bias=True,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
    ),
    "tiny": ModelArch(
        name="tiny",
        family="llama",
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        vocab_size=512,
        tied_embeddings=True,
        qkv_bias=False,
        rope_theta=10000.0,
        max_position_embeddings=2048,
    ),
}


def get_architecture(name: str) -> ModelArch:
    """Look up a model by name, or raise ConfigError listing the known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(ARCHITECTURES)}") from None
