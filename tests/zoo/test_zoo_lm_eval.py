"""lm-eval scores a zoo checkpoint through the zoo's task YAMLs, offline, and agrees with
the zoo's own scoring document by document."""

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from evomerge.zoo.data import read_jsonl, training_stream
from evomerge.zoo.scoring import score_rows
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
    import lm_eval
    from lm_eval.tasks import TaskManager

    tasks = ["zoo_sort_mc_search", "zoo_sort_gen_search"]
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={sort_model},dtype=float32", tasks=tasks,
        task_manager=TaskManager(include_path=str(tiny_zoo.task_dir)), limit=LIMIT,
        batch_size=8, device="cpu", log_samples=True,
    )
    rows = read_jsonl(tiny_zoo.split_file("sort", "search"))[:LIMIT]
    ours = score_rows(AutoModelForCausalLM.from_pretrained(sort_model),
                      AutoTokenizer.from_pretrained(sort_model), rows)
    for task, metric in zip(tasks, ("acc", "exact_match")):
        theirs = {s["doc"]["doc_id"]: s[metric] for s in out["samples"][task]}
        assert theirs == ours.per_doc[metric]
        assert out["results"][task][f"{metric},none"] == pytest.approx(ours.metrics[metric])
    # Not a degenerate agreement: the model gets some documents right and some wrong.
    assert 0 < ours.metrics["exact_match"] < 1
    assert ours.metrics["acc"] > 0.5
