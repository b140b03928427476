"""Train a tiny Llama on a stream of examples: loss on the answer tokens only, deterministic.

A training example is ``<s> prompt answer \\n``; the loss covers the answer and the closing
newline (so greedy generation knows where to stop) and never the prompt. Runs are
bit-reproducible: a fixed seed, deterministic algorithms and a single thread.

>>> from evomerge.zoo.data import training_stream
>>> tok = char_tokenizer()
>>> model = new_model(ModelShape(hidden=32, layers=1, heads=2), tok, seed=0)
>>> losses = train(model, tok, training_stream({"sort": 1.0}, seed=0),
...                TrainSettings(steps=3, lr=1e-3, batch_size=4), seed=0)
>>> len(losses)
3
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import islice

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evomerge.testing.tiny_llama import tiny_llama_config
from evomerge.zoo.skills import Example
from evomerge.testing.char_tokenizer import DEFAULT_ALPHABET, build_char_tokenizer

#: Ends every answer; greedy generation stops on it.
ANSWER_END = "\n"
IGNORE = -100


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    heads: int
    intermediate: int | None = None
    max_positions: int = 64


@dataclass(frozen=True)
class TrainSettings:
    """``schedule`` is ``"cosine"`` (warm-up then decay to 10%) or ``"constant"``;
    ``trainable`` is a regex on parameter names (``None`` trains everything)."""

    steps: int
    lr: float
    batch_size: int = 64
    warmup: int = 0
    schedule: str = "constant"
    weight_decay: float = 0.0
    trainable: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def char_tokenizer() -> PreTrainedTokenizerFast:
    """The zoo's tokenizer (one token per character)."""
    return build_char_tokenizer(DEFAULT_ALPHABET)


def new_model(shape: ModelShape, tokenizer: PreTrainedTokenizerFast,
              seed: int) -> LlamaForCausalLM:
    """A freshly initialised Llama of ``shape`` for ``tokenizer``'s vocabulary."""
    config = tiny_llama_config(
        vocab_size=len(tokenizer), hidden_size=shape.hidden, num_layers=shape.layers,
        num_heads=shape.heads, intermediate_size=shape.intermediate,
        max_position_embeddings=shape.max_positions,
    )
    with torch.random.fork_rng(devices=[]):  # seeded init; the caller's RNG is left alone
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


@contextlib.contextmanager
def deterministic(seed: int, threads: int = 1) -> Iterator[None]:
    """Seed torch, force deterministic kernels and a fixed thread count; restore all three
    (the random state too) after."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def encode(tokenizer: PreTrainedTokenizerFast, examples: Sequence[Example]
           ) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (prompt and padding
    masked with -100) for ``<s> prompt answer \\n``."""
    # Prompt and answer are tokenized apart so the answer span is exact for any tokenizer
    # (a subword tokenizer could merge across the boundary of the joined string).
    prompts = tokenizer([e.prompt for e in examples]).input_ids
    answers = tokenizer([e.answer + ANSWER_END for e in examples],
                        add_special_tokens=False).input_ids
    width = max(len(p) + len(a) for p, a in zip(prompts, answers))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    labels = torch.full((len(prompts), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, (p, a) in enumerate(zip(prompts, answers)):
        n = len(p) + len(a)
        ids[row, :n] = torch.tensor(p + a)
        mask[row, :n] = 1
        labels[row, len(p):n] = torch.tensor(a)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _lr_factor(step: int, s: TrainSettings) -> float:
    if step < s.warmup:
        return (step + 1) / s.warmup
    if s.schedule == "constant":
        return 1.0
    progress = (step - s.warmup) / max(1, s.steps - s.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def train(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast,
          stream: Iterator[Example], settings: TrainSettings, seed: int,
          on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` in place on ``settings.steps`` batches drawn from ``stream``;
    returns the loss of every step. Parameters not matched by ``settings.trainable`` stay
    frozen (their task vector is exactly zero)."""
    pattern = re.compile(settings.trainable) if settings.trainable else None
    params = [p for n, p in model.named_parameters() if pattern is None or pattern.search(n)]
    for n, p in model.named_parameters():
        p.requires_grad_(pattern is None or bool(pattern.search(n)))
    losses: list[float] = []
    with deterministic(seed):
        opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: _lr_factor(k, settings))
        model.train()
        for step in range(settings.steps):
            batch = encode(tokenizer, list(islice(stream, settings.batch_size)))
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(step, losses[-1])
        model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return losses


def train_prefix(base: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast,
                 stream: Iterator[Example], settings: TrainSettings, seed: int,
                 on_step: Callable[[int, float], None] | None = None
                 ) -> LlamaForCausalLM:
    """A copy of ``base`` whose first layer is trained to run *in front of* the frozen
    base: the model trained has the base's layers behind one new first layer (the base's
    first layer with its output projections zeroed, so that it starts as the identity),
    and only that layer learns. The copy returned holds the trained layer as its first
    layer and the base's other layers: run in front of a model fine-tuned from the same
    base, that layer feeds it what the base's embeddings would.

    ``settings.trainable`` is ignored (only the new first layer trains).
    """
    config = copy.deepcopy(base.config)
    config.num_hidden_layers += 1
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = [config.layer_types[0], *config.layer_types]
    stacked = LlamaForCausalLM(config)
    state = {}
    for name, tensor in base.state_dict().items():
        m = re.match(r"model\.layers\.(\d+)\.(.*)", name)
        if m is None:
            state[name] = tensor
        else:
            state[f"model.layers.{int(m[1]) + 1}.{m[2]}"] = tensor
            if m[1] == "0":
                zero = m[2].endswith(("o_proj.weight", "down_proj.weight"))
                state[f"model.layers.0.{m[2]}"] = torch.zeros_like(tensor) if zero else tensor
    stacked.load_state_dict({k: v.clone() for k, v in state.items()})
    prefix_only = dataclasses.replace(settings, trainable=r"^model\.layers\.0\.")
    train(stacked, tokenizer, stream, prefix_only, seed, on_step)
    out = copy.deepcopy(base)
    out.model.layers[0].load_state_dict(stacked.model.layers[0].state_dict())
    return out
