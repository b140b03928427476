"""lm-eval scores a zoo checkpoint through the zoo's task YAMLs, offline, and agrees with
the zoo's own scoring document by document."""

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer
from zoo_support import lm_eval_against_zoo_scoring

from evomerge.zoo.data import training_stream
from evomerge.zoo.train import TrainSettings, train

LIMIT = 32


@pytest.fixture(scope="module")
def sort_model(tiny_zoo, tmp_path_factory):
    """The tiny sort expert trained a little longer, so that exact match is neither 0 nor 1
    and the comparison below has right and wrong documents to agree on."""
    tok = AutoTokenizer.from_pretrained(tiny_zoo.base)
    model = AutoModelForCausalLM.from_pretrained(tiny_zoo.experts["sort"])
    train(model, tok, training_stream({"sort": 1.0}, seed=5),
          TrainSettings(steps=200, lr=3e-3, batch_size=32), seed=5)
    out = tmp_path_factory.mktemp("sort_model")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_lm_eval_matches_the_zoo_scoring_per_document(tiny_zoo, sort_model):
    ours = lm_eval_against_zoo_scoring(tiny_zoo, sort_model, ["sort"], "search",
                                       LIMIT)["sort"]
    # Not a degenerate agreement: the model gets some documents right and some wrong.
    assert 0 < ours["exact_match"] < 1
    assert ours["acc"] > 0.5
