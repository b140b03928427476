"""Shared by the routing tests: two tiny Llamas, paths over them, a hand-written layer
loop to compare against, and padded batches."""

from __future__ import annotations

from pathlib import Path

import torch

from evomerge.merge.recipe import load_recipe_dict
from evomerge.testing.random_models import save_random_llama

LAYERS = 3


def save_pair(root: Path) -> tuple[Path, Path]:
    """Two unrelated random Llamas of one shape (3 layers, width 32)."""
    a = save_random_llama(root / "a", seed=0, num_layers=LAYERS)
    b = save_random_llama(root / "b", seed=1, num_layers=LAYERS)
    return a, b


def routed_recipe(a: Path, b: Path, scales: bool = True, **routing):
    """A path through a and b that visits b's layer 1 twice (with scales unless told)."""
    s = (0.8, 1.3, 0.6) if scales else (1.0, 1.0, 1.0)
    path = [(a, 0, 1.0), (b, 1, s[0]), (b, 1, s[1]), (a, 1, s[2]), (a, LAYERS - 1, 1.0)]
    return load_recipe_dict({"routing": {
        "embeddings": str(a), **routing,
        "path": [{"model": str(m), "layer": layer, "scale": sc} for m, layer, sc in path]}})


def padded_batch(vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows, the second left-padded by 3 tokens: (input ids, attention mask)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (2, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    ids[1, :3] = 0
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token, as generate makes."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def hand_loop(sources: dict, recipe, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The path written out: embeddings, each hop's layer on its scaled input (causal and
    padding mask as an additive float mask), final norm, head."""
    frame = sources[recipe.routing.embeddings]
    pos = positions(mask)
    hidden = frame.model.embed_tokens(ids)
    rope = frame.model.rotary_emb(hidden, position_ids=pos)
    n = ids.shape[1]
    allowed = torch.tril(torch.ones(n, n, dtype=torch.bool)) & mask[:, None, :].bool()
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    for hop in recipe.routing.path:
        layer = sources[hop.model].model.layers[hop.layer]
        hidden = layer(hidden * hop.scale, attention_mask=additive[:, None],
                       position_embeddings=rope, position_ids=pos)
    return frame.lm_head(frame.model.norm(hidden))


def greedy(mask: torch.Tensor, tokens: int) -> dict:
    """generate() settings: greedy, ``tokens`` new tokens, no early stop."""
    return {"attention_mask": mask, "max_new_tokens": tokens, "do_sample": False,
            "pad_token_id": 0, "eos_token_id": None}


def assert_same_outputs(model, other, seed: int) -> None:
    """Bit-equal logits and greedy tokens on a padded batch."""
    ids, mask = padded_batch(model.config.vocab_size, seed=seed)
    with torch.no_grad():
        assert torch.equal(other(ids, attention_mask=mask).logits,
                           model(ids, attention_mask=mask).logits)
        assert torch.equal(other.generate(ids, **greedy(mask, 5)),
                           model.generate(ids, **greedy(mask, 5)))
