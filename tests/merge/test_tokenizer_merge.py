"""Tokenizer settings mean what they mean in mergekit: tokenizer_source base / union /
a model, the tokenizer block (per-token sources, force, padding) and chat templates.

mergekit 0.1.5 orders a union's new tokens differently from run to run (its models are
iterated as a set), so vocabularies are compared as token -> row maps: the same tokens,
and every token's embedding and head row the same.
"""

import json
from pathlib import Path

import pytest
import torch
import yaml
from test_mergekit_oracle import _evomerge, _mergekit

from evomerge.cli import main
from evomerge.testing.random_models import save_perturbed, save_random_llama

pytestmark = pytest.mark.oracle

VOCAB_TENSORS = ("model.embed_tokens.weight", "lm_head.weight")


def _with_added_tokens(src: Path, out: Path, tokens: list[str], seed: int) -> Path:
    """``src`` with ``tokens`` added to its tokenizer and embeddings, then perturbed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    tok.add_tokens(tokens)
    model = AutoModelForCausalLM.from_pretrained(src)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _bpe_with_unused_tokens(like, unused: list[str]):
    """A BPE tokenizer (no merges) with ``like``'s vocabulary, then ``unused`` added."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(vocab=like.get_vocab(), merges=[], unk_token="<unk>"))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>", pad_token="<pad>")
    tok.add_tokens(unused)
    return tok


@pytest.fixture(scope="module")
def vocab_models(tmp_path_factory) -> dict[str, str]:
    """A base (92 tokens), a ChatML fine-tune (94), one with other tokens (95), a
    fine-tune with the base's vocabulary, and one whose tokenizer has 2 tokens more than
    its 92 rows."""
    root = tmp_path_factory.mktemp("vocab")
    base = save_random_llama(root / "base", seed=0, hidden_size=32, num_layers=2)
    chatml = _with_added_tokens(base, root / "chatml", ["<|im_start|>", "<|im_end|>"], 1)
    other = _with_added_tokens(base, root / "other", ["<x1>", "<|im_end|>", "<x2>"], 2)
    plain = save_perturbed(base, root / "plain", seed=3, scale=0.02)
    # tokens in the tokenizer beyond the model's rows: unused, never in a union; a BPE
    # tokenizer, the kind mergekit can strip them from
    padded = save_perturbed(base, root / "padded", seed=4, scale=0.02)
    _bpe_with_unused_tokens(_tokenizer(base), ["<UNUSED_0>", "<UNUSED_1>"]).save_pretrained(
        padded)
    return {k: str(v) for k, v in {"base": base, "chatml": chatml, "other": other,
                                   "plain": plain, "padded": padded}.items()}


def _configs(m):
    b, c, o = m["base"], m["chatml"], m["other"]
    w = lambda *pairs: [{"model": p, "parameters": dict(q)} for p, q in pairs]  # noqa: E731
    return {
        "union": {"merge_method": "linear", "base_model": b, "tokenizer_source": "union",
                  "models": w((b, {"weight": 0.5}), (c, {"weight": 0.3}),
                              (o, {"weight": 0.2}), (m["padded"], {"weight": 0.1}))},
        "base": {"merge_method": "ties", "base_model": b, "tokenizer_source": "base",
                 "models": w((c, {"weight": 0.5, "density": 0.5}),
                             (o, {"weight": 0.5, "density": 0.5}))},
        "model": {"merge_method": "linear", "tokenizer_source": c,
                  "models": w((b, {"weight": 0.5}), (o, {"weight": 0.5}))},
        "block": {"merge_method": "linear", "base_model": b, "tokenizer": {
            "source": "union", "pad_to_multiple_of": 10, "tokens": {
                "a": {"source": c, "force": True},
                "<|im_end|>": {"source": {"kind": "model_token", "model": o,
                                          "token": "<x1>"}, "force": True},
                "<x2>": {"source": {"kind": "zero"}},
                "b": {"source": {"kind": "model_token", "model": c, "token_id": 93},
                      "force": True}}},
            "models": w((b, {"weight": 0.5}), (c, {"weight": 0.5}), (o, {"weight": 0.5}))},
        "base_with_unused_tokens": {
            "merge_method": "linear", "base_model": m["padded"], "tokenizer_source": "base",
            "models": w((m["padded"], {"weight": 0.5}), (c, {"weight": 0.5}))},
        "union_from_base_with_unused_tokens": {
            "merge_method": "linear", "base_model": m["padded"], "tokenizer_source": "union",
            "models": w((m["padded"], {"weight": 0.5}), (c, {"weight": 0.5}))},
        "union_slerp": {"merge_method": "slerp", "base_model": b, "tokenizer_source": "union",
                        "models": [{"model": b}, {"model": c}], "parameters": {"t": 0.4}},
    }


def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("case", ["union", "base", "model", "block", "union_slerp",
                                  "base_with_unused_tokens",
                                  "union_from_base_with_unused_tokens"])
def test_tokenizer_settings_give_mergekits_model(case, vocab_models, tmp_path):
    config = _configs(vocab_models)[case]
    want = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    ours, theirs = _tokenizer(tmp_path / "evo").get_vocab(), _tokenizer(tmp_path / "mk").get_vocab()
    assert sorted(ours) == sorted(theirs)
    config_ours = json.loads((tmp_path / "evo" / "config.json").read_text())
    assert config_ours == json.loads((tmp_path / "mk" / "config.json").read_text())
    assert sorted(got) == sorted(want)
    for name, expected in want.items():
        assert got[name].shape == expected.shape, name
        if name not in VOCAB_TENSORS:
            torch.testing.assert_close(got[name], expected, atol=1e-6, rtol=1e-6)
            continue
        for token, row in theirs.items():
            torch.testing.assert_close(got[name][ours[token]], expected[row], atol=1e-6,
                                       rtol=1e-6, msg=lambda m, t=token: f"{name} {t!r}: {m}")
        padding = slice(len(theirs), None)  # rows added by pad_to_multiple_of
        torch.testing.assert_close(got[name][padding], expected[padding], atol=1e-6,
                                   rtol=1e-6)


def test_union_orders_new_tokens_by_model_then_id(vocab_models, tmp_path):
    _evomerge(_configs(vocab_models)["union"], tmp_path)
    vocab = _tokenizer(tmp_path / "evo").get_vocab()
    assert [vocab[t] for t in ("<|im_start|>", "<|im_end|>", "<x1>", "<x2>")] == \
        [92, 93, 94, 95]


def test_chat_template_is_written(vocab_models, tmp_path):
    template = "{% for m in messages %}<<{{ m['content'] }}>>{% endfor %}"
    config = {"merge_method": "linear", "chat_template": template,
              "models": [{"model": vocab_models["base"], "parameters": {"weight": 0.5}},
                         {"model": vocab_models["plain"], "parameters": {"weight": 0.5}}]}
    _evomerge(config, tmp_path)
    tok = _tokenizer(tmp_path / "evo")
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text == "<<hi>>"


def _rendered(tok, turns: list[dict], prompt: bool) -> str:
    """The prompt text, or the exception's type where the template refuses the turns."""
    try:
        return tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=prompt)
    except Exception as exc:  # noqa: BLE001 -- both sides must refuse alike
        return type(exc).__name__


def _conversations() -> list[list[dict]]:
    """Conversations that reach every branch of the named templates: with and without a
    system message, two system messages, Alpaca's user_context and a role none knows,
    ending on each role, contents with outer spaces and newlines."""
    s, s2 = {"role": "system", "content": " be brief \n"}, {"role": "system", "content": "s2"}
    u, a = {"role": "user", "content": "hi"}, {"role": "assistant", "content": " yo\n"}
    u2, c = {"role": "user", "content": "and?"}, {"role": "user_context", "content": " ctx "}
    tool = {"role": "tool", "content": "42"}
    return [[s], [s, u], [s, u, a], [s, u, a, u2], [u, a, u2], [u], [u, c, a],
            [s, u, a, s2], [u, tool, a], [a, u], [s, s2, u, a]]


@pytest.mark.parametrize("name", ["alpaca", "chatml", "exaone", "llama3", "mistral"])
def test_named_chat_template_renders_as_mergekits(name, vocab_models, tmp_path):
    config = {"merge_method": "linear", "tokenizer_source": "base", "chat_template": name,
              "models": [{"model": vocab_models["base"], "parameters": {"weight": 0.5}},
                         {"model": vocab_models["plain"], "parameters": {"weight": 0.5}}]}
    _mergekit(config, tmp_path / "mk")
    _evomerge(config, tmp_path)
    ours, theirs = _tokenizer(tmp_path / "evo"), _tokenizer(tmp_path / "mk")
    for prompt in (False, True):
        for turns in _conversations():
            assert _rendered(ours, turns, prompt) == _rendered(theirs, turns, prompt)


def test_auto_chat_template_takes_the_models_own(vocab_models, tmp_path):
    config = {"merge_method": "linear", "chat_template": "auto",
              "models": [{"model": vocab_models["base"], "parameters": {"weight": 0.5}},
                         {"model": vocab_models["plain"], "parameters": {"weight": 0.5}}]}
    _evomerge(config, tmp_path)
    # neither model has a template: none is invented
    assert _tokenizer(tmp_path / "evo").chat_template is None


def test_different_vocabularies_without_a_tokenizer_setting_say_what_to_set(
        vocab_models, tmp_path, capsys):
    """mergekit refuses these too; the message names the setting that aligns them."""
    config = {"merge_method": "linear", "base_model": vocab_models["base"],
              "models": [{"model": vocab_models["base"], "parameters": {"weight": 1.0}},
                         {"model": vocab_models["chatml"], "parameters": {"weight": 1.0}}]}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    assert main(["merge", str(recipe), str(tmp_path / "evo"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "base: [92], chatml: [94]" in err
    assert "set 'tokenizer_source'" in err


@pytest.mark.parametrize(("extra", "field", "rule"), [
    ({"chat_template": "vicuna"}, "chat_template",
     "one of the names ['alpaca', 'chatml', 'exaone', 'llama3', 'mistral']"),
    ({"tokenizer_source": "base", "tokenizer": {"source": "base"}}, None,
     "either 'tokenizer_source' or a 'tokenizer' block"),
    ({"tokenizer": {"source": "union", "pad_to_multiple_of": 0}}, "tokenizer.pad_to_multiple_of",
     "greater than or equal to 1"),
    ({"tokenizer": {"tokens": {"z": {"source": {"kind": "model_token", "model": "BASE",
                                                "token_id": 5000}}}}},
     "tokenizer.tokens['z'].source.token_id", "has 92 rows"),
    ({"tokenizer": {"tokens": {"z": {"source": {"kind": "model_token", "model": "BASE",
                                                "token": "nope"}}}}},
     "tokenizer.tokens['z'].source.token", "has no such token"),
    ({"tokenizer_source": "EMPTY"}, "tokenizer_source", "no tokenizer could be loaded"),
])
def test_bad_tokenizer_settings_are_one_message(vocab_models, tmp_path, capsys, extra, field,
                                                rule):
    (tmp_path / "empty").mkdir()
    named = {"BASE": vocab_models["base"], "EMPTY": str(tmp_path / "empty")}
    extra = yaml.safe_load(yaml.safe_dump(extra).replace("BASE", named["BASE"])
                           .replace("EMPTY", named["EMPTY"]))
    config = {"merge_method": "linear",
              "models": [{"model": vocab_models["base"], "parameters": {"weight": 1.0}}],
              **extra}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    assert main(["merge", str(recipe), str(tmp_path / "evo"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and rule in err and str(recipe) in err
    if field:
        assert field in err


def test_in_memory_builds_refuse_tokenizer_settings(tiny_models):
    from evomerge.errors import ConfigError
    from evomerge.merge.live import LiveMerger
    from evomerge.merge.recipe import Recipe

    base, a = str(tiny_models["base"]), str(tiny_models["a"])
    recipe = Recipe.model_validate({
        "merge_method": "task_arithmetic", "base_model": base, "tokenizer_source": "union",
        "models": [{"model": a, "parameters": {"weight": 1.0}}]})
    with LiveMerger([a], base=base) as merger, \
            pytest.raises(ConfigError, match="tokenizer settings apply to disk merges only"):
        merger.plan(recipe)
