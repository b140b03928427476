"""The Llama configuration of every tiny model made here: the zoo's trained models and the
random checkpoints of the tests.

>>> tiny_llama_config(vocab_size=100, hidden_size=32).intermediate_size
80
"""

from __future__ import annotations

from transformers import LlamaConfig


def tiny_llama_config(
    vocab_size: int,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    tie_word_embeddings: bool = False,
    max_position_embeddings: int = 256,
) -> LlamaConfig:
    """A small Llama config; the intermediate size defaults to 2.5 x the hidden size."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size + hidden_size // 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
