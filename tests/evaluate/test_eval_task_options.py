"""Task options (documents, few-shot, chat template, generation) as lm-eval applies them."""

from __future__ import annotations

import pytest
from eval_support import GEN_TASK, MC_TASK, load, perturb, write_task

from evomerge.evaluate import LmEvalConfig, LmEvalEvaluator, TaskConfig

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_options_match_lm_eval_simple_evaluate(base_dir, task_dir):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    doc_ids = [2, 5, 11, 17]
    model, tokenizer = load(base_dir)
    perturb(model, seed=7)
    tokenizer.chat_template = CHAT_TEMPLATE
    until = [".", "\n"]
    config = LmEvalConfig(
        include_paths=[str(task_dir)], batch_size=4, apply_chat_template=True,
        log_samples=True,
        search_tasks=[
            TaskConfig(name=MC_TASK, doc_ids=doc_ids, num_fewshot=2),
            TaskConfig(name=GEN_TASK, doc_ids=doc_ids, num_fewshot=2, until=until,
                       max_gen_toks=5),
        ],
    )
    evaluator = LmEvalEvaluator(config)
    fitness = evaluator.evaluate(model, tokenizer)
    assert fitness.is_ok, fitness.error

    reference = simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4),
        tasks=[MC_TASK, GEN_TASK], num_fewshot=2,
        samples={MC_TASK: doc_ids, GEN_TASK: doc_ids}, apply_chat_template=True,
        gen_kwargs={"until": until, "max_gen_toks": 5}, bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
    )
    assert fitness.objectives[f"{MC_TASK}/acc"] == reference["results"][MC_TASK]["acc,none"]
    assert (fitness.objectives[f"{GEN_TASK}/exact_match"]
            == reference["results"][GEN_TASK]["exact_match,none"])
    for task, metric in ((MC_TASK, "acc"), (GEN_TASK, "exact_match")):
        logged = reference["samples"][task]
        keys = [s["doc"]["id"] if task == MC_TASK else str(s["doc_id"]) for s in logged]
        assert keys == [s["doc_id"] for s in evaluator.last_samples[task]]
        assert dict(zip(keys, (s[metric] for s in logged))) == fitness.sample_scores[task]
        assert ([s["filtered_resps"] for s in logged]
                == [s["filtered_resps"] for s in evaluator.last_samples[task]])
        # the prompts really went through the chat template, with two shots each
        prompt = logged[0]["arguments"][0][0]
        assert prompt.startswith("<user>") and prompt.count("<assistant>") == 3
    assert set(fitness.sample_scores[GEN_TASK]) == {"2", "5", "11", "17"}  # dataset indices
    assert all("." not in s["filtered_resps"][0] for s in evaluator.last_samples[GEN_TASK])


def _keys(task_dir, tiny, **selection) -> set[str]:
    config = LmEvalConfig(include_paths=[str(task_dir)],
                          search_tasks=[TaskConfig(name=GEN_TASK, max_gen_toks=1, **selection)])
    return set(LmEvalEvaluator(config).evaluate(*tiny).sample_scores[GEN_TASK])


def test_seeded_subsample_is_fixed_by_its_seed(task_dir, tiny):
    first = _keys(task_dir, tiny, subsample={"size": 5, "seed": 3})
    assert len(first) == 5 and first <= {str(i) for i in range(20)}
    assert _keys(task_dir, tiny, subsample={"size": 5, "seed": 3}) == first
    assert _keys(task_dir, tiny, subsample={"size": 5, "seed": 4}) != first


def test_fractional_limit_takes_the_first_documents(task_dir, tiny):
    assert _keys(task_dir, tiny, limit=0.25) == {"0", "1", "2", "3", "4"}


def _acc(folder, name, tiny) -> tuple[float, dict]:
    config = LmEvalConfig(include_paths=[str(folder)],
                          search_tasks=[TaskConfig(name=name, limit=6)])
    fitness = LmEvalEvaluator(config).evaluate(*tiny)
    return fitness.objectives[f"{name}/acc"], fitness.sample_scores


@pytest.mark.parametrize("kind", ["tag", "group"])
def test_a_group_or_tag_scores_the_document_weighted_mean_of_its_tasks(tmp_path, tiny, kind):
    folder = tmp_path / "tasks"
    write_task(folder, "mc_plain", "tiny_mc", tag=["tiny_family"])
    write_task(folder, "mc_question", "tiny_mc", tag=["tiny_family"],
               doc_to_text="Question: {{question}}\nAnswer:")
    if kind == "group":
        (folder / "family.yaml").write_text(
            "group: tiny_family_group\ntask: [mc_plain, mc_question]\n")
    name = "tiny_family" if kind == "tag" else "tiny_family_group"
    plain, _ = _acc(folder, "mc_plain", tiny)
    question, _ = _acc(folder, "mc_question", tiny)
    both, samples = _acc(folder, name, tiny)
    assert both == pytest.approx((plain + question) / 2)
    assert set(samples) == {"mc_plain", "mc_question"}
    assert all(len(per_doc) == 6 for per_doc in samples.values())
