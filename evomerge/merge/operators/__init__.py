"""Merge operators: pure tensor functions, registered by name in :data:`OPERATORS`.

Every operator is listed once, here, in :data:`OPERATOR_LIST`; nothing registers itself
on import. An operator's :class:`ParamSpec` tuple is its config schema.

>>> OPERATORS.names()  # doctest: +NORMALIZE_WHITESPACE
['arcee_fusion', 'breadcrumbs', 'breadcrumbs_ties', 'dare_linear', 'dare_ties', 'della',
 'della_linear', 'karcher', 'linear', 'model_stock', 'multislerp', 'nearswap', 'nuslerp',
 'passthrough', 'ram', 'ramplus_tl', 'sce', 'slerp', 'task_arithmetic', 'ties']
>>> import torch
>>> ties = OPERATORS.get("ties")
>>> params = ties.resolve_params({"weight": 1.0, "density": 0.5}, n_models=2)
>>> ties([torch.tensor([3.0, -1.0]), torch.tensor([1.0, 2.0])], params).tolist()
[3.0, 2.0]
"""

from __future__ import annotations

from evomerge.merge.operators.linear import LINEAR
from evomerge.merge.operators.lines import LINES_PARAMS, lines_scale
from evomerge.merge.operators.model_stock import MODEL_STOCK
from evomerge.merge.operators.pairwise import ARCEE_FUSION, NEARSWAP
from evomerge.merge.operators.passthrough import PASSTHROUGH
from evomerge.merge.operators.ram import RAM, RAMPLUS_TL
from evomerge.merge.operators.sce import SCE
from evomerge.merge.operators.seeding import tensor_generator
from evomerge.merge.operators.slerp import SLERP
from evomerge.merge.operators.spherical import KARCHER, MULTISLERP, NUSLERP
from evomerge.merge.operators.spec import MergeOperator, ParamSpec, ParamValue
from evomerge.merge.operators.task_arithmetic import (
    BREADCRUMBS,
    BREADCRUMBS_TIES,
    DARE_LINEAR,
    DARE_TIES,
    DELLA,
    DELLA_LINEAR,
    TASK_ARITHMETIC,
    TIES,
)
from evomerge.registry import Registry

OPERATOR_LIST: tuple[MergeOperator, ...] = (
    LINEAR,
    SLERP,
    PASSTHROUGH,
    TASK_ARITHMETIC,
    TIES,
    DARE_LINEAR,
    DARE_TIES,
    BREADCRUMBS,
    BREADCRUMBS_TIES,
    DELLA_LINEAR,
    DELLA,
    MODEL_STOCK,
    NUSLERP,
    MULTISLERP,
    KARCHER,
    SCE,
    NEARSWAP,
    ARCEE_FUSION,
    RAM,
    RAMPLUS_TL,
)

OPERATORS: Registry[MergeOperator] = Registry("merge method")
for _operator in OPERATOR_LIST:
    OPERATORS.register(_operator.name, _operator)
del _operator

__all__ = ["LINES_PARAMS", "OPERATORS", "OPERATOR_LIST", "MergeOperator", "ParamSpec",
           "ParamValue", "lines_scale", "tensor_generator"]
