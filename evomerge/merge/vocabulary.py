"""The merged model's tokenizer, and every model's vocabulary rows aligned to it.

When a recipe names a tokenizer (``tokenizer_source`` or a ``tokenizer`` block), the
output vocabulary is the base model's, a given model's, or the union of all models'
(the base's tokens first, then each model's new tokens in model order, plain tokens
before added ones). Each model's token-embedding and output-head matrices are then
re-indexed to that vocabulary before the merge, as mergekit 0.1.5 does:

- a token the model has keeps the model's own row (unless the token's setting says
  ``force``);
- a token it lacks takes the row its setting names (a model's row for the token, a row
  of a model's other token, zeros); without a setting, the one model that has it gives
  the row, else the base model when it has it, else the mean over the models that have
  it (zeros when none does);
- rows added by ``pad_to_multiple_of`` are the mean of the model's real rows.

A model's tokens are those of its tokenizer whose id is below its config's
``vocab_size`` (the rows it has).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from evomerge.checkpoint.architecture import is_output_head, is_token_embedding
from evomerge.errors import CheckpointError, ConfigError
from evomerge.merge.recipe import Recipe
from evomerge.merge.tokenizer_settings import (
    NAMED_CHAT_TEMPLATES,
    ModelToken,
    TokenEmbedding,
    TokenizerSettings,
    ZeroEmbedding,
)

#: (model, tensor name) -> the tensor as stored (rows in the model's own vocabulary)
Fetch = Callable[[str, str], torch.Tensor]


def is_vocabulary_tensor(name: str) -> bool:
    """Whether ``name``'s rows are indexed by token (embedding or output head)."""
    return is_token_embedding(name) or is_output_head(name)


def tokenizer_settings(recipe: Recipe) -> TokenizerSettings | None:
    """The recipe's tokenizer settings, the ``tokenizer_source`` shorthand included."""
    if recipe.tokenizer is not None:
        return recipe.tokenizer
    if recipe.tokenizer_source is not None:
        return TokenizerSettings(source=recipe.tokenizer_source)
    return None


def _load_tokenizer(path: str, field_name: str, file: object = None):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # any failure to read a folder's tokenizer is the input's
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__  # one line
        raise ConfigError(file, field_name, path,
                          f"no tokenizer could be loaded from this folder ({reason})") from None


def _rows(config: Mapping) -> int | None:
    size = config.get("vocab_size")
    if size is None and isinstance(config.get("text_config"), Mapping):
        size = config["text_config"].get("vocab_size")
    return size


@dataclass
class Vocabulary:
    """The output tokenizer and, per model, where each output row comes from."""

    tokenizer: object
    size: int  # rows of the merged vocabulary matrices, padding included
    #: model -> output token id -> the model's row for it (-1: the model lacks it)
    rows: dict[str, list[int]]
    tokens: list[str]  # output tokens by id
    sources: dict[str, TokenEmbedding] = field(default_factory=dict)
    base: str | None = None
    original: dict[str, dict[str, int]] = field(default_factory=dict)

    def aligned(self, fetch: Fetch, models: list[str], name: str) -> dict[str, torch.Tensor]:
        """Every model's ``name`` with its rows in the output vocabulary's order."""
        stored = {m: fetch(m, name) for m in models}
        dtype = stored[models[0]].dtype
        for t in stored.values():
            dtype = torch.promote_types(dtype, t.dtype)
        width = stored[models[0]].shape[1:]
        shared = self._shared_rows(stored, models, width, dtype)
        forced = torch.tensor([bool(self.sources.get(t) and self.sources[t].force)
                               for t in self.tokens], dtype=torch.bool)
        ids = {t: i for i, t in enumerate(self.tokens)}
        out = {}
        for m in models:
            rows = torch.tensor(self.rows[m], dtype=torch.long)
            own = (rows >= 0) & ~forced  # rows the model keeps: one gather
            new = torch.zeros((self.size, *width), dtype=dtype)
            new[:len(self.tokens)][own] = stored[m].to(dtype)[rows[own]]
            for token, row in shared.items():
                i = ids[token]
                if not own[i]:
                    new[i] = row
            if self.size > len(self.tokens):  # padding rows: the mean of the real ones
                new[len(self.tokens):] = new[:len(self.tokens)].mean(dim=0)
            out[m] = new
        return out

    def _shared_rows(self, stored, models, width, dtype) -> dict[str, torch.Tensor]:
        """The row every model uses for each token some model lacks (or that is forced)."""
        shared = {}
        for i, token in enumerate(self.tokens):
            setting = self.sources.get(token)
            present = [m for m in models if self.rows[m][i] >= 0]
            if len(present) == len(models) and not (setting and setting.force):
                continue
            source = setting.source if setting is not None else None
            if setting is None or source is None:
                if len(present) == 1:
                    source = present[0]
                elif not present:
                    source = ZeroEmbedding(kind="zero")
                elif self.base in present:
                    source = self.base
            if source is None:  # the mean over the models that have it
                row = torch.zeros(width, dtype=dtype)
                for m in present:
                    row = row + stored[m][self.rows[m][i]]
                shared[token] = row / len(present)
            elif isinstance(source, ZeroEmbedding):
                shared[token] = torch.zeros(width, dtype=dtype)
            elif isinstance(source, ModelToken):
                row = source.token_id if source.token is None \
                    else self.original[source.model][source.token]
                shared[token] = stored[source.model][row]
            else:
                shared[token] = stored[source][self.rows[source][i]]
        return shared

    def save(self, folder: Path, chat_template: str | None) -> None:
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        self.tokenizer.save_pretrained(folder)


def chosen_chat_template(recipe: Recipe) -> str | None:
    """The recipe's chat template; for ``auto`` the one most of the models' tokenizers
    carry (stripped; the first of equally common ones), None when none has one."""
    if recipe.chat_template in NAMED_CHAT_TEMPLATES:
        return NAMED_CHAT_TEMPLATES[recipe.chat_template]
    if recipe.chat_template != "auto":
        return recipe.chat_template
    found = []
    for model in recipe.source_models():
        template = _load_tokenizer(model, "models").chat_template
        if isinstance(template, dict):
            template = template.get("default")
        if template:
            found.append(template.strip())
    return Counter(found).most_common(1)[0][0] if found else None


def _without_unused(tokenizer, rows: int):
    """``tokenizer`` without the tokens whose id is ``rows`` or more (tokens its model has
    no embedding row for); the tokenizer itself when it has none."""
    import json

    from tokenizers import Tokenizer

    unused = {t for t, i in tokenizer.get_vocab().items() if i >= rows}
    if not unused:
        return tokenizer
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    data["added_tokens"] = [e for e in data["added_tokens"] if e["id"] < rows]
    vocab = data["model"].get("vocab")
    if isinstance(vocab, dict):
        data["model"]["vocab"] = {t: i for t, i in vocab.items() if t not in unused}
    if "merges" in data["model"]:  # BPE: merges that make an unused token go too
        def used(merge) -> bool:
            parts = merge.split(" ") if isinstance(merge, str) else merge
            return not unused & {*parts, "".join(parts)}
        data["model"]["merges"] = [m for m in data["model"]["merges"] if used(m)]
    stripped = copy.deepcopy(tokenizer)
    stripped._tokenizer = Tokenizer.from_str(json.dumps(data))
    return stripped


def _union(base_tokenizer, tokenizers: dict, sizes: dict[str, int]):
    """The base tokenizer with every other token any model uses added, plain tokens
    first, then added (special) tokens with their first model's settings."""
    plain: dict[str, None] = {}
    added: dict[str, object] = {}
    for model, tok in tokenizers.items():
        decoder = tok.added_tokens_decoder
        added_names = {info.content for info in decoder.values()}
        for token, i in sorted(tok.get_vocab().items(), key=lambda kv: kv[1]):
            if i < sizes[model] and token not in added_names:
                plain.setdefault(token, None)
        for i, info in decoder.items():
            if i < sizes[model]:
                added.setdefault(info.content, info)
    with tempfile.TemporaryDirectory() as tmp:  # a copy: the base tokenizer stays as it is
        base_tokenizer.save_pretrained(tmp)
        out = _load_tokenizer(tmp, "tokenizer.source")
    known = base_tokenizer.get_vocab()
    for token in plain:
        if token not in known and token not in added:
            out.add_tokens(token)
    for info in added.values():
        out.add_tokens(info)
    return out


def build_vocabulary(recipe: Recipe, configs: Mapping[str, Mapping],
                     file: object = None) -> Vocabulary | None:
    """The output vocabulary and each model's row map; None when the recipe names no
    tokenizer (the template model's tokenizer is copied, rows untouched)."""
    settings = tokenizer_settings(recipe)
    if settings is None:
        return None
    models = recipe.source_models()
    base = recipe.base_model or models[0]
    tokenizers = {m: _load_tokenizer(m, "models", file) for m in models}
    sizes = {m: _rows(configs[m]) or len(tokenizers[m].get_vocab()) for m in models}
    tokenizers[base] = _without_unused(tokenizers[base], sizes[base])
    vocabs = {m: {t: i for t, i in tok.get_vocab().items() if i < sizes[m]}
              for m, tok in tokenizers.items()}
    if settings.source == "base":
        out = tokenizers[base]
    elif settings.source == "union":
        out = _union(tokenizers[base], tokenizers, sizes)
    else:
        field_name = "tokenizer.source" if recipe.tokenizer else "tokenizer_source"
        out = _load_tokenizer(settings.source, field_name, file)
    vocab = out.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise CheckpointError(f"the output tokenizer's ids are not 0..{len(tokens) - 1}")
    for token, setting in (settings.tokens or {}).items():
        _check_token_source(token, setting.source, models, vocabs, sizes, file)
        if token not in vocab:
            out.add_tokens(token)
            vocab = out.get_vocab()
            tokens.append(token)
    size = len(tokens)
    multiple = settings.pad_to_multiple_of
    if multiple and size % multiple:
        size += multiple - size % multiple
    rows = {m: [vocabs[m].get(t, -1) for t in tokens] for m in models}
    return Vocabulary(out, size, rows, tokens, dict(settings.tokens or {}), base, vocabs)


def _check_token_source(token: str, source: object, models: list[str],
                        vocabs: Mapping[str, Mapping[str, int]], sizes: Mapping[str, int],
                        file: object) -> None:
    """The rule a token's embedding source must meet, checked before any tensor is read."""
    field_name = f"tokenizer.tokens[{token!r}].source"
    named = source.model if isinstance(source, ModelToken) else source
    if isinstance(named, str) and named not in models:
        raise ConfigError(file, field_name, named, f"not one of the merged models {models}")
    if isinstance(source, str) and token not in vocabs[source]:
        raise ConfigError(file, field_name, source, f"this model has no token {token!r}")
    if isinstance(source, ModelToken):
        if source.token is not None and source.token not in vocabs[source.model]:
            raise ConfigError(file, f"{field_name}.token", source.token,
                              f"model {source.model!r} has no such token")
        if source.token_id is not None and source.token_id >= sizes[source.model]:
            raise ConfigError(file, f"{field_name}.token_id", source.token_id,
                              f"model {source.model!r} has {sizes[source.model]} rows")


def tokenizer_folder(recipe: Recipe, vocabulary: Vocabulary | None, template: Path,
                     stack: object) -> Path:
    """A folder holding the tokenizer files the output gets (and the template model's
    generation config): the template's own folder unless the recipe changes them."""
    chat_template = chosen_chat_template(recipe)
    if vocabulary is None and chat_template is None:
        return template
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    if vocabulary is None:
        vocabulary = Vocabulary(_load_tokenizer(str(template), "base_model"), 0, {}, [])
    vocabulary.save(folder, chat_template)
    if (template / "generation_config.json").is_file():
        shutil.copyfile(template / "generation_config.json", folder / "generation_config.json")
    return folder
