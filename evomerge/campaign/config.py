"""The campaign file: which models, which space, which optimizer, how to score, how long.

A campaign file (``format: evomerge/campaign-v1``) holds::

    name: toy-ties                       # the study's name
    models: {base: runs/zoo/models/base, sources: [runs/zoo/models/expert_add, ...]}
    space: ../../search_spaces/ties_layerwise.yaml   # a file (relative to this file) or inline
    optimizer: {name: cma, options: {popsize: 6}}   # optional: CMA-ES with its defaults
    evaluation: {lm_eval: {include_paths: [...], search_tasks: [...]},
                 fidelity: {levels: [0.1, 0.3, 1.0]}}   # optional: stop weak ones early
    objectives: [score]                  # optional: which evaluation objectives to optimise
    budget: {evaluations: 100, hours: 8} # and/or documents: search documents scored
    executor: {kind: local, workers: 1, device: auto}   # or kind: ray (address: HOST:PORT)
    report: {best: 3}                    # how many best candidates get the report tasks
    seed: 0

Model folders and evaluation paths are read from the working directory, as recipes and
lm-eval read them; the space file from the campaign file's folder. :func:`load_campaign`
checks everything a campaign needs before any model is loaded: every field, the model
folders, the space bound to the models, the evaluation section against lm-eval's task
index (a report task on the data of a search task is refused there), the optimizer's
options with the optimizer's own checks, and the fidelity rule's pruner options.

>>> from evomerge.errors import CheckpointError, ConfigError
>>> try:
...     CampaignConfig.from_dict({"format": "evomerge/campaign-v1", "name": "x",
...         "models": {"sources": ["a"]}, "space": {}, "optimizer": {"name": "cma"},
...         "evaluation": {}, "budget": {"evaluations": 0}}, "c.yaml")
... except ConfigError as err:
...     print(err)
c.yaml: field 'budget.evaluations' = 0: Input should be greater than 0
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from evomerge.campaign.fidelity import build_pruner
from evomerge.checkpoint.reader import CheckpointReader
from evomerge.config_io import read_yaml, validate_config
from evomerge.errors import CheckpointError, ConfigError
from evomerge.evaluate import (
    EvaluationConfig,
    build_search_evaluator,
    check_evaluation_config,
    load_evaluation_config,
)
from evomerge.evaluate.base import settings_hash
from evomerge.evaluate.config import FidelityConfig
from evomerge.execute.base import EXECUTORS
from evomerge.merge.recipe import load_recipe_dict
from evomerge.optim.base import ObjectiveSpec
from evomerge.optim.registry import build_optimizer
from evomerge.records import Candidate
from evomerge.space import BoundSpace, load_space
from evomerge.space.bound import Decoded
from evomerge.space.files import self_contained, space_from_dict
from evomerge.space.forms import CoefficientForm

CAMPAIGN_FORMAT = "evomerge/campaign-v1"
#: the optimizer of a campaign file that names none: CMA-ES, as the evolutionary model
#: merge paper ran it (x0 = 0.5, sigma0 = 1/6 on the unit box)
DEFAULT_OPTIMIZER = "cma"
#: the optimizer whose members are M2N2 coefficient matrices, not points
M2N2 = "m2n2"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelsConfig(_Strict):
    base: str | None = None
    sources: list[str] = Field(min_length=1)


class OptimizerConfig(_Strict):
    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)


class BudgetConfig(_Strict):
    evaluations: PositiveInt | None = None
    hours: PositiveFloat | None = None
    #: documents scored on the search tasks, over every candidate and fidelity level
    documents: PositiveInt | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetConfig:
        if self.evaluations is None and self.hours is None and self.documents is None:
            raise ValueError("give evaluations, hours, documents, or several")
        return self


class ExecutorConfig(_Strict):
    kind: Literal["local", "ray"] = "local"
    workers: PositiveInt = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: HOST:PORT of a running Ray head to join (kind ray); none: a local Ray
    address: str | None = None
    #: a candidate still running after this many seconds is a failed result
    candidate_timeout_s: PositiveFloat | None = None

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ExecutorConfig:
        if self.address is not None and self.kind != "ray":
            raise ValueError("address joins a Ray cluster: it needs kind ray")
        return self

    def options(self) -> dict[str, Any]:
        """The executor's own keyword options."""
        extra: dict[str, Any] = {"candidate_timeout_s": self.candidate_timeout_s}
        if self.kind == "ray":
            extra["address"] = self.address
        return extra


class ReportConfig(_Strict):
    #: how many of the best candidates (by the search split) are scored on the report
    #: tasks when the search stops; for several objectives, members of the Pareto front
    best: PositiveInt = 3


class CampaignConfig(_Strict):
    """The parsed campaign file (paths as written; :func:`load_campaign` resolves them)."""

    format: Literal["evomerge/campaign-v1"]
    name: str = Field(min_length=1)
    models: ModelsConfig
    space: str | dict[str, Any]
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig(
        name=DEFAULT_OPTIMIZER))
    evaluation: dict[str, Any]
    objectives: list[str] | None = Field(default=None, min_length=1)
    budget: BudgetConfig
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any], file: Path | str | None = None) -> CampaignConfig:
        return validate_config(cls, data, file)


@dataclass
class Campaign:
    """A checked campaign: the config with paths resolved, the bound space, the
    evaluation section and the objectives the optimizer works on."""

    config: CampaignConfig
    file: Path | None
    space: BoundSpace
    evaluation: EvaluationConfig
    objectives: ObjectiveSpec
    _form: CoefficientForm | None = field(default=None, repr=False)

    @property
    def base(self) -> str | None:
        return self.config.models.base

    @property
    def sources(self) -> list[str]:
        return list(self.config.models.sources)

    def resolved_dict(self) -> dict[str, Any]:
        """The campaign as it runs: absolute paths, the space inline; loading it again
        from any folder gives the same campaign."""
        return self.config.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved_dict(), sort_keys=False)

    def config_hash(self) -> str:
        return settings_hash(self.resolved_dict())

    @property
    def has_report_tasks(self) -> bool:
        return self.evaluation.lm_eval is not None and bool(self.evaluation.lm_eval.report_tasks)

    @property
    def form(self) -> CoefficientForm | None:
        """M2N2's coefficient form over the space, when the optimizer is M2N2."""
        if self.config.optimizer.name != M2N2:
            return None
        if self._form is None:
            self._form = CoefficientForm(self.space)
        return self._form

    def decode(self, candidate: Candidate) -> Decoded:
        """The recipe of an optimizer's candidate: from its point, or from the
        coefficient matrix an M2N2 candidate carries instead."""
        if candidate.x is None and self.form is not None:
            return Decoded(load_recipe_dict(self.form.decode_candidate(candidate).recipe,
                                            self.file), ())
        if candidate.x is None:
            raise ConfigError(self.file, "optimizer", self.config.optimizer.name,
                              f"candidate {candidate.uid} carries no point to decode")
        return self.space.decode(candidate.x)

    def build_optimizer(self, for_run: bool = False):
        """The campaign's optimizer; ``for_run``: also given what only the models can
        tell (M2N2's basis Gram matrices, read tensor by tensor)."""
        opt = self.config.optimizer
        options = dict(opt.options)
        if self.form is not None:
            for key, value in self.form.optimizer_options().items():
                options.setdefault(key, value)
        optimizer = build_optimizer(opt.name, self.space.dim, self.objectives,
                                    self.config.seed, **options)
        if for_run and self.form is not None and "gram" not in opt.options:
            optimizer.set_gram(_basis_gram(self.form))
        return optimizer


def load_campaign(path: Path | str, overrides: dict[str, Any] | None = None) -> Campaign:
    """Read and check a campaign file; ``overrides`` maps dotted fields to values (the
    command line's ``--budget`` is ``{"budget.evaluations": N}``)."""
    data = read_yaml(path)
    for dotted, value in (overrides or {}).items():
        set_field(data, dotted, value)
    return campaign_from_dict(data, Path(path))


def campaign_from_dict(data: dict[str, Any], file: Path | None = None) -> Campaign:
    """Check a campaign mapping completely (see the module docstring); nothing is loaded
    but the models' tensor names and lm-eval's task index."""
    config = CampaignConfig.from_dict(copy.deepcopy(data), file)
    if config.executor.kind not in EXECUTORS:
        raise ConfigError(file, "executor.kind", config.executor.kind,
                          f"not available in this version (available: {EXECUTORS.names()})")
    here = file.parent if file is not None else Path(".")
    config.models.base = _model_folder(config.models.base, file, "models.base")
    config.models.sources = [_model_folder(s, file, f"models.sources[{i}]")
                             for i, s in enumerate(config.models.sources)]
    if isinstance(config.space, str):
        space_file = (here / config.space).resolve()
        space = load_space(space_file)
        config.space = self_contained(read_yaml(space_file), space_file)
    else:
        space = space_from_dict(config.space, file)
        space_file = file
        # an inline data-flow space may name its merge's file (relative to this file):
        # read it in, so that the campaign folder's copy means the same
        config.space = self_contained(config.space, file)
    try:
        bound = space.bind(config.models.base, config.models.sources, file=space_file)
    except ConfigError as exc:  # the campaign's models against the space: name both files
        where = "" if exc.file in (None, file) else f" (space {exc.file})"
        field = ("models" if exc.field in ("base", "models", "sources") else
                 "space" if exc.field is None else f"space.{exc.field}")
        raise ConfigError(file, field, exc.value, exc.rule + where) from None
    except CheckpointError as exc:  # folders whose tensors do not line up
        raise ConfigError(file, "models", [config.models.base, *config.models.sources],
                          str(exc)) from None

    evaluation = load_evaluation_config(config.evaluation, file or "<config>")
    evaluation = _absolute_paths(evaluation)
    config.evaluation = evaluation.model_dump(mode="json", exclude_defaults=True)
    check_evaluation_config(evaluation, file or "<config>")
    evaluator = build_search_evaluator(evaluation, file or "<config>",
                                       reference_state=_never_read)
    objectives = _objectives(evaluator.objectives(), config.objectives, file)
    if evaluation.fidelity is not None:
        _check_fidelity(evaluation.fidelity, objectives, file)
    campaign = Campaign(config, file, bound, evaluation, objectives)
    try:
        if config.optimizer.name == M2N2:  # members are coefficient matrices of the space
            campaign.form  # noqa: B018 - builds the form, or says why the space has none
        campaign.build_optimizer()
    except ConfigError as exc:
        raise ConfigError(file, exc.field, exc.value, exc.rule) from None
    return campaign


def _basis_gram(form: CoefficientForm) -> Any:
    """The form's Gram matrices from its models' folders, one tensor at a time."""
    import torch

    readers: dict[str, CheckpointReader] = {}
    try:
        return form.gram(lambda model, name: readers.setdefault(
            model, CheckpointReader(model)).get(name, dtype=torch.float32))
    finally:
        for reader in readers.values():
            reader.close()


def _check_fidelity(fidelity: FidelityConfig, objectives: ObjectiveSpec,
                    file: Path | None) -> None:
    """Fidelity levels need one objective (the pruners compare one number) and options
    the rule's pruner takes."""
    if len(objectives.names) != 1:
        raise ConfigError(file, "evaluation.fidelity", fidelity.rule,
                          "a pruning rule compares one number, but the campaign optimises "
                          f"{list(objectives.names)}: choose one objective, or no fidelity")
    build_pruner(fidelity, file)


def _objectives(available: dict[str, str], chosen: list[str] | None,
                file: Path | None) -> ObjectiveSpec:
    """The objectives to optimise: those named, else ``score`` where the evaluation has
    it, else all of them."""
    if chosen is None:
        chosen = ["score"] if "score" in available else list(available)
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise ConfigError(file, "objectives", unknown,
                          f"the evaluation reports only {sorted(available)}")
    return ObjectiveSpec(tuple(chosen), tuple(available[n] for n in chosen))


def _never_read() -> Any:  # pragma: no cover - the check never scores a model
    raise RuntimeError("the campaign check reads no model weights")


def _model_folder(folder: str | None, file: Path | None, field: str) -> str | None:
    if folder is None:
        return None
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(file, field, folder, "no such model folder")
    if not (path / "config.json").is_file():
        raise ConfigError(file, field, folder, "not a model folder (it has no config.json)")
    return str(path.resolve())


def _absolute_paths(evaluation: EvaluationConfig) -> EvaluationConfig:
    """The evaluation section with its working-directory paths made absolute."""
    update: dict[str, Any] = {}
    if evaluation.lm_eval is not None:
        update["lm_eval"] = evaluation.lm_eval.model_copy(update={"include_paths": [
            str(Path(p).resolve()) for p in evaluation.lm_eval.include_paths]})
    update["perplexity"] = [p.model_copy(update={"path": str(Path(p.path).resolve())})
                            for p in evaluation.perplexity]
    python = []
    for fn in evaluation.python:
        module, _, name = fn.function.rpartition(":")
        if module.endswith(".py"):
            fn = fn.model_copy(update={"function": f"{Path(module).resolve()}:{name}"})
        python.append(fn)
    update["python"] = python
    return evaluation.model_copy(update=update)


def set_field(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested mappings, making the parents where missing."""
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[last] = value
