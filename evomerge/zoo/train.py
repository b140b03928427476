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
from transformers import LlamaForCausalLM, LlamaModel, PreTrainedTokenizerFast

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


def _optimize(model: torch.nn.Module, params: list[torch.nn.Parameter],
              batch_loss: Callable[[list[Example]], torch.Tensor],
              stream: Iterator[Example], settings: TrainSettings, seed: int,
              on_step: Callable[[int, float], None] | None) -> list[float]:
    """The training loop every zoo model shares: AdamW on ``params`` only (the others are
    frozen meanwhile), ``settings``' schedule, gradients clipped to norm 1, deterministic."""
    trained = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in trained)
    losses: list[float] = []
    with deterministic(seed):
        opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: _lr_factor(k, settings))
        model.train()
        for step in range(settings.steps):
            loss = batch_loss(list(islice(stream, settings.batch_size)))
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


def train(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast,
          stream: Iterator[Example], settings: TrainSettings, seed: int,
          on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` in place on ``settings.steps`` batches drawn from ``stream``;
    returns the loss of every step. Parameters not matched by ``settings.trainable`` stay
    frozen (their task vector is exactly zero)."""
    pattern = re.compile(settings.trainable) if settings.trainable else None
    params = [p for n, p in model.named_parameters() if pattern is None or pattern.search(n)]
    return _optimize(model, params, lambda batch: model(**encode(tokenizer, batch)).loss,
                     stream, settings, seed, on_step)


def train_translator(base: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast,
                     stream: Iterator[Example], translate: Callable[[str], str],
                     settings: TrainSettings, seed: int,
                     on_step: Callable[[int, float], None] | None = None
                     ) -> LlamaForCausalLM:
    """A copy of ``base`` whose first layer is trained into a *translator*: its output on
    a text is the base's embeddings of ``translate(text)`` (``translate`` maps character
    to character, so positions line up). Run in front of any model fine-tuned from the
    same base, that layer hands it the text it knows where the prompt has one it does not.

    The layer starts as the identity (the base's first layer with its output projections
    zeroed: the residual stream passes the embeddings through) and learns by mean squared
    error against the translated text's embeddings over the real (unpadded) tokens. The
    copy keeps the base's other layers. ``settings.trainable`` is ignored.
    """
    model = copy.deepcopy(base)
    layer = model.model.layers[0]
    with torch.no_grad():
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    # a one-layer model sharing the embeddings and the first layer: its output before the
    # final norm (replaced by the identity) is that layer's output
    config = copy.deepcopy(base.config)
    config.num_hidden_layers = 1
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = config.layer_types[:1]
    with torch.random.fork_rng(devices=[]):  # its own fresh modules are replaced below
        probe = LlamaModel(config)
    probe.embed_tokens, probe.layers[0], probe.norm = (model.model.embed_tokens, layer,
                                                       torch.nn.Identity())

    def translated(e: Example) -> Example:
        return dataclasses.replace(e, prompt=translate(e.prompt), answer=translate(e.answer))

    def batch_loss(batch: list[Example]) -> torch.Tensor:
        source = encode(tokenizer, batch)
        target_ids = encode(tokenizer, [translated(e) for e in batch])["input_ids"]
        if target_ids.shape != source["input_ids"].shape:
            raise ValueError("translate must map each character to one character")
        out = probe(input_ids=source["input_ids"],
                    attention_mask=source["attention_mask"]).last_hidden_state
        target = model.model.embed_tokens(target_ids).detach()
        real = source["attention_mask"].unsqueeze(-1).to(out.dtype)
        return ((out - target) ** 2 * real).sum() / (real.sum() * out.shape[-1])

    _optimize(model, list(layer.parameters()), batch_loss, stream, settings, seed, on_step)
    return model
