"""Build a zoo folder: data splits, a base model, one expert per skill, lm-eval task YAMLs.

Layout of ``OUT_DIR``::

    zoo.json                     manifest: spec, spec hash, models, tasks
    data/<task>/{search,test}.jsonl
    models/base/                 Hugging Face folders (safetensors, config, tokenizer)
    models/expert_<skill>/
    tasks/*.yaml                 lm-eval tasks (``--include_path OUT_DIR/tasks``)

The build is cached by a content hash of the preset, the seed, the zoo's source code,
the torch/transformers versions and torch's CPU kernels: building again with the same spec
reuses the folder (only the task YAMLs are rewritten, since they hold absolute paths);
``force=True`` rebuilds. The same spec gives bit-identical model and data files on
machines whose BLAS (MKL) takes the same code path; data files are identical everywhere.

>>> from evomerge.zoo.presets import get_preset
>>> spec_hash(build_spec(get_preset("tiny"), 0)) != spec_hash(build_spec(get_preset("tiny"), 1))
True
>>> import tempfile, pathlib
>>> zoo = build_zoo(pathlib.Path(tempfile.mkdtemp()) / "zoo", preset="tiny")  # doctest: +SKIP
>>> sorted(zoo.models)                                                         # doctest: +SKIP
['base', 'expert_add', 'expert_read', 'expert_reverse', 'expert_sort']
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from evomerge.errors import ConfigError
from evomerge.zoo import data as zoo_data
from evomerge.zoo.lm_eval_tasks import write_task_yamls
from evomerge.zoo.presets import Preset, get_preset
from evomerge.zoo.skills import SKILLS, glyphs_to_decimal
from evomerge.zoo.train import char_tokenizer, new_model, train, train_translator

MANIFEST = "zoo.json"
FORMAT_VERSION = 1
#: The modules whose code decides the bits of a build (paths inside the package).
_SOURCES = ("zoo/skills.py", "zoo/data.py", "zoo/train.py", "zoo/presets.py",
            "zoo/build.py", "testing/char_tokenizer.py", "testing/tiny_llama.py")

#: ``progress(stage, done, total)``: stage is "data", "base" or "expert_<skill>".
Progress = Callable[[str, int, int], None]


@dataclass
class Zoo:
    """A built zoo: its folder and manifest."""

    root: Path
    manifest: dict

    @property
    def models(self) -> dict[str, Path]:
        return {name: self.root / rel for name, rel in self.manifest["models"].items()}

    @property
    def experts(self) -> dict[str, Path]:
        """skill -> expert folder."""
        return {skill: self.root / rel for skill, rel in self.manifest["experts"].items()}

    @property
    def base(self) -> Path:
        return self.models["base"]

    def split_file(self, task: str, split: str) -> Path:
        return self.root / self.manifest["data"][task][split]

    @property
    def task_dir(self) -> Path:
        return self.root / "tasks"


def code_version() -> str:
    """A hash of the zoo modules that decide what a build contains."""
    h = hashlib.sha256()
    package = Path(__file__).parent.parent
    for name in _SOURCES:
        h.update(name.encode() + b"\0" + (package / name).read_bytes())
    return h.hexdigest()[:16]


def build_spec(preset: Preset, seed: int) -> dict:
    """What decides a build's bits: preset, seed, code, versions and torch's CPU kernels
    (AVX2 and AVX-512 kernels round differently, and training amplifies it: the same
    spec built with other kernels gives other models, whose scores differ)."""
    return {"format": FORMAT_VERSION, "preset": preset.to_dict(), "seed": seed,
            "code": code_version(), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cpu": torch.backends.cpu.get_cpu_capability()}


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _sub_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "big")


def load_zoo(root: Path | str) -> Zoo:
    """Open a built zoo folder (raises :class:`ConfigError` when it is not one)."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise ConfigError(root, None, None, f"not a zoo folder: {MANIFEST} is missing "
                                            "(build one with `evomerge zoo build`)")
    return Zoo(root, json.loads(path.read_text()))


def cached_zoo(root: Path | str, digest: str) -> Zoo | None:
    """The zoo in ``root`` if it was built from the spec with hash ``digest``, else None."""
    if not (Path(root) / MANIFEST).is_file():
        return None
    zoo = load_zoo(root)
    return zoo if zoo.manifest.get("spec_hash") == digest else None


def _check_target(out: Path) -> None:
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise ConfigError(out, None, None, "the output folder exists, is not empty and is "
                                           "not a zoo; choose a new or empty folder")


def _noop(stage: str, done: int, total: int) -> None:
    pass


def _train_models(tmp: Path, preset: Preset, seed: int, files: dict, progress: Progress
                  ) -> dict[str, str]:
    tok = char_tokenizer()
    exclude = zoo_data.eval_prompts(files)
    models: dict[str, str] = {}

    def save(model, name: str) -> None:
        folder = tmp / "models" / name
        model.save_pretrained(folder, safe_serialization=True)
        tok.save_pretrained(folder)
        models[name] = f"models/{name}"

    base = new_model(preset.shape, tok, _sub_seed(seed, "init"))
    stream = zoo_data.training_stream(preset.mixture, _sub_seed(seed, "base"),
                                      preset.decoy_rate, exclude)
    train(base, tok, stream, preset.base, _sub_seed(seed, "base"),
          on_step=lambda i, _: progress("base", i + 1, preset.base.steps))
    save(base, "base")
    if preset.plans is None:
        for skill in preset.expert_skills():
            expert = copy.deepcopy(base)
            stream = zoo_data.training_stream({skill: 1.0}, _sub_seed(seed, skill), 0.0,
                                              exclude)
            train(expert, tok, stream, preset.expert, _sub_seed(seed, skill),
                  on_step=lambda i, _, s=skill: progress(f"expert_{s}", i + 1,
                                                         preset.expert.steps))
            save(expert, f"expert_{skill}")
        return models
    for plan in preset.plans:
        expert = copy.deepcopy(base)
        total = sum(ph.settings.steps for ph in plan.phases)
        done = 0
        for k, phase in enumerate(plan.phases):
            name = f"{plan.skill}:{k}"
            stream = zoo_data.training_stream(phase.mixture, _sub_seed(seed, name),
                                              phase.decoys, exclude)
            step = (lambda i, _, s=plan.skill, d=done:  # noqa: E731
                    progress(f"expert_{s}", d + i + 1, total))
            if phase.translator:
                expert = train_translator(expert, tok, stream, glyphs_to_decimal,
                                          phase.settings, _sub_seed(seed, name),
                                          on_step=step)
            else:
                train(expert, tok, stream, phase.settings, _sub_seed(seed, name),
                      on_step=step)
            done += phase.settings.steps
        save(expert, f"expert_{plan.skill}")
    return models


def build_zoo(out_dir: Path | str, preset: str | Preset = "default", seed: int = 0,
              force: bool = False, progress: Progress = _noop) -> Zoo:
    """Build (or reuse) the zoo of ``preset`` (a name, or a :class:`Preset` of one's
    own) and ``seed`` in ``out_dir``."""
    out = Path(out_dir).resolve()
    chosen = preset if isinstance(preset, Preset) else get_preset(preset)
    spec = build_spec(chosen, seed)
    digest = spec_hash(spec)
    _check_target(out)
    cached = None if force else cached_zoo(out, digest)
    if cached is not None:
        _write_yamls(cached)
        return cached

    out.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and swap it in, so a crash never leaves a half-built zoo.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        progress("data", 0, 1)
        files = zoo_data.write_task_data(tmp / "data", chosen.tasks, chosen.n_search,
                                         chosen.n_test, seed)
        progress("data", 1, 1)
        models = _train_models(tmp, chosen, seed, files, progress)
        manifest = {
            "spec_hash": digest, "spec": spec, "models": models,
            "experts": {s: models[f"expert_{s}"] for s in chosen.expert_skills()},
            "skills": {n: {"description": SKILLS[n].description,
                           "needs": list(SKILLS[n].needs)} for n in chosen.tasks},
            "data": {t: {s: str(f.relative_to(tmp)) for s, f in fs.items()}
                     for t, fs in files.items()},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    zoo = load_zoo(out)
    _write_yamls(zoo)
    return zoo


def _write_yamls(zoo: Zoo) -> None:
    files = {t: {s: zoo.split_file(t, s) for s in zoo_data.SPLITS}
             for t in zoo.manifest["data"]}
    write_task_yamls(zoo.task_dir, files)
