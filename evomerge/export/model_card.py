"""What a merged model folder records about how it was made.

Next to the weights: the recipe as it ran (the merge engine writes it), the mergekit
config that rebuilds the same tensors where mergekit can express the recipe (as
``mergekit_config.yml``, the name mergekit gives it), and a short model card in the form
Hugging Face model cards take (YAML metadata, then Markdown).

>>> from evomerge.merge.recipe import load_recipe_dict
>>> r = load_recipe_dict({"merge_method": "linear", "models": [
...     {"model": "a", "parameters": {"weight": 0.5}},
...     {"model": "b", "parameters": {"weight": 0.5}}]})
>>> sorted(merge_records(r))
['README.md', 'mergekit_config.yml']
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import yaml

from evomerge.errors import ConfigError
from evomerge.export.mergekit_yaml import mergekit_yaml
from evomerge.merge.recipe import Recipe
from evomerge.merge.routing import MERGED
from evomerge.merge.to_disk import RECIPE_FILE

MERGEKIT_FILE = "mergekit_config.yml"
CARD_FILE = "README.md"


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` ("not installed" for a missing one)."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def merge_records(recipe: Recipe, sections: Sequence[str] = ()) -> dict[str, str]:
    """File name -> contents of the records a merged folder gets besides the recipe;
    ``sections`` are more Markdown sections for the model card (see :func:`model_card`)."""
    records = {}
    why_not = None
    try:
        records[MERGEKIT_FILE] = mergekit_yaml(recipe)
    except ConfigError as exc:
        why_not = exc.rule
    records[CARD_FILE] = model_card(recipe, mergekit_refusal=why_not, sections=sections)
    return records


def model_card(recipe: Recipe, mergekit_refusal: str | None = None,
               sections: Sequence[str] = ()) -> str:
    """A short model card: metadata, sources, method, how to rebuild, versions.

    ``sections`` (Markdown, each starting with its ``##`` heading) go before the
    versions: a campaign's export adds its scores and where the recipe came from."""
    sources = recipe_models(recipe)
    meta = {"library_name": "transformers", "tags": ["merge", "evomerge"],
            "base_model": sources}
    versions = package_versions("evomerge", "torch", "transformers", "safetensors")
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "",
        f"# {recipe.name or 'Merged model'}", "",
        _made_with(recipe), "",
        "## Sources", "",
        *[f"- `{m}`" + (" (base)" if m == recipe.base_model else "") for m in sources], "",
        "## Recipe", "",
        (f"Content hash `{recipe.content_hash()}`, seed {recipe.seed}. "
         f"`evomerge merge {RECIPE_FILE} OUT_DIR` rebuilds these weights bit for bit."), "",
        "```yaml", recipe.to_yaml().rstrip(), "```", "",
    ]
    if mergekit_refusal is None:
        lines += [f"`{MERGEKIT_FILE}` is the same merge as a mergekit config.", ""]
    else:
        lines += [f"mergekit cannot express this recipe: {mergekit_refusal}.", ""]
    lines += [section.rstrip() + "\n" for section in sections]
    lines += ["## Versions", "",
              *[f"- {name} {v}" for name, v in versions.items()],
              f"- Python {platform.python_version()}", ""]
    return "\n".join(lines)


def recipe_models(recipe: Recipe) -> list[str]:
    """Every model folder the recipe reads: its weight merge's, then its routing's."""
    routed = [m for m in recipe.routing.models() if m != MERGED] if recipe.routing else []
    return list(dict.fromkeys([*recipe.source_models(), *routed]))


def _made_with(recipe: Recipe) -> str:
    parts = []
    if recipe.merge_method is not None:
        lines = (f" (LiNeS alpha {recipe.lines.alpha}, beta {recipe.lines.beta})"
                 if recipe.lines else "")
        parts.append(f"merging {len(recipe.source_models())} models with "
                     f"`{recipe.merge_method}`{lines}")
    if recipe.routing is not None:
        parts.append(f"routing the hidden state along a path of {len(recipe.routing.path)} "
                     f"layers (embeddings and head from `{recipe.routing.embeddings}`)")
    return "Made with evomerge by " + ", then ".join(parts) + "."
