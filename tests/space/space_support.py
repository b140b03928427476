"""Shared by the search-space tests: the shipped spaces, Llama tensor names from a config,
binding helpers."""

from functools import lru_cache
from pathlib import Path


SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
#: the parameter spaces; the data-flow spaces (a ``dataflow`` section) have their own tests
SHIPPED = sorted(p.name for p in SPACES.glob("*.yaml") if "\ndataflow:" not in p.read_text())
DATAFLOW = sorted(p.name for p in SPACES.glob("*.yaml") if "\ndataflow:" in p.read_text())


@lru_cache(maxsize=None)
def llama_tensor_names(num_layers: int, tied: bool = False) -> tuple[str, ...]:
    """The tensor names a Llama checkpoint with ``num_layers`` layers stores, from its
    transformers config on the meta device (no weights, no download)."""
    import torch
    from transformers import LlamaForCausalLM

    from evomerge.testing.random_models import tiny_llama_config

    config = tiny_llama_config(vocab_size=16, hidden_size=16, num_layers=num_layers,
                               num_heads=2, tie_word_embeddings=tied)
    with torch.device("meta"):
        names = list(LlamaForCausalLM(config).state_dict())
    return tuple(n for n in names if not (tied and n == "lm_head.weight"))


def roles_for(space, models: dict[str, Path]) -> tuple[str | None, list[str]]:
    """(base, sources) of the tiny models for a space's roles: two sources unless the
    space names fewer."""
    roles = space.models
    low, high = roles.count_range()
    n = low if high == low else max(low, 2)
    sources = [str(models[k]) for k in ("a", "b", "c")[:n]]
    return (str(models["base"]) if roles.base else None), sources


def bind_shipped(name: str, n_layers: int, n_sources: int = 2, tied: bool = False):
    """A shipped space bound by tensor names only: the base and ``n_sources`` sources
    (or the space's named roles) as placeholder paths."""
    from evomerge.space import ModelFacts, load_space

    space = load_space(SPACES / name)
    roles = space.models
    if isinstance(roles.sources, list):
        sources = [f"models/{r}" for r in roles.sources]
    else:
        sources = [f"models/expert_{i}" for i in range(max(n_sources, roles.count_range()[0]))]
    return space.bind("models/base" if roles.base else None, sources,
                      facts=ModelFacts(llama_tensor_names(n_layers, tied)))
