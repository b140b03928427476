"""Side by side or one after another: the operators' parallel steps give the same tensors
either way (the pool itself is tested in test_engine.py)."""

import threading

import pytest
import torch

import evomerge.merge.operators.task_arithmetic as task_arithmetic
from evomerge.merge.engine import MergeContext
from evomerge.merge.operators import OPERATORS, side_by_side


@pytest.mark.parametrize("method", ["ties", "breadcrumbs_ties"])
def test_side_by_side_sparsification_matches_one_after_another(method, monkeypatch):
    g = torch.Generator().manual_seed(0)
    n = task_arithmetic.SIDE_BY_SIDE_NUMEL
    taus = [torch.randn(n, generator=g) for _ in range(3)]
    assert task_arithmetic.sparsify_in_parallel(taus, random=False)
    op = OPERATORS.get(method)
    params = op.resolve_params({"weight": [1.0, 0.5, 0.7], "density": 0.3}, 3)
    with MergeContext() as ctx:
        together = op(taus, params, ctx=ctx)
        monkeypatch.setattr(task_arithmetic, "sparsify_in_parallel", lambda *a: False)
        assert torch.equal(together, op(taus, params, ctx=ctx))


def test_dare_draws_the_same_masks_on_the_pool_and_in_turn():
    op = OPERATORS.get("dare_ties")
    taus = [torch.randn(1 << 20, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    params = op.resolve_params({"weight": [1.0, 0.5], "density": 0.3}, 2)
    with MergeContext() as ctx:
        pooled = op(taus, params, generator=torch.Generator().manual_seed(3), ctx=ctx)
    in_turn = op(taus, params, generator=torch.Generator().manual_seed(3),
                 ctx=_InTurn())
    assert torch.equal(pooled, in_turn)


class _InTurn(MergeContext):
    """A context whose parallel map is the plain one."""

    def each(self, fn, *iterables):
        return side_by_side.each(fn, *iterables)


def test_without_a_pool_calls_run_in_turn_on_the_calling_thread():
    seen = side_by_side.each(lambda i: (i, threading.get_ident()), range(3))
    assert seen == [(i, threading.get_ident()) for i in range(3)]
