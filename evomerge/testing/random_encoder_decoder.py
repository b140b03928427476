"""Random tiny encoder-decoder checkpoints (T5, Whisper), for tests of merging them.

Saved as transformers writes them: T5's stacks under ``encoder.block.N`` and
``decoder.block.N`` around the ``shared`` embedding (and ``lm_head`` when untied);
Whisper's under ``model.encoder.layers.N`` and ``model.decoder.layers.N``. The encoder
is shallower than the decoder, so a merge that confused the two depths shows.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> from evomerge.checkpoint.reader import CheckpointReader
>>> names = CheckpointReader(save_random_t5(d / "t5", seed=0)).tensor_names()
>>> "decoder.block.2.layer.2.DenseReluDense.wo.weight" in names, "lm_head.weight" in names
(True, False)
"""

from __future__ import annotations

from pathlib import Path

from evomerge.testing.random_vlm import save_initialised


def save_random_t5(out_dir: Path | str, seed: int = 0, encoder_layers: int = 2,
                   decoder_layers: int = 3, tied: bool = True) -> Path:
    """Save a randomly initialised T5 (gated feed-forward, as T5 v1.1 and FLAN-T5);
    ``tied=False`` stores its own ``lm_head``."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_heads=2,
                      num_layers=encoder_layers, num_decoder_layers=decoder_layers,
                      feed_forward_proj="gated-gelu", decoder_start_token_id=0,
                      tie_word_embeddings=tied)
    return save_initialised(T5ForConditionalGeneration, config, seed, out_dir)


def save_random_whisper(out_dir: Path | str, seed: int = 0, encoder_layers: int = 2,
                        decoder_layers: int = 3) -> Path:
    """Save a randomly initialised Whisper (its output projection tied to the decoder's
    embedding, so not stored)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        vocab_size=64, d_model=16, encoder_layers=encoder_layers,
        decoder_layers=decoder_layers, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=8,
        max_source_positions=8, max_target_positions=8, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1, suppress_tokens=[],
        begin_suppress_tokens=[])
    return save_initialised(WhisperForConditionalGeneration, config, seed, out_dir)
