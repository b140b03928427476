"""The operators' thread pool: same results as running in turn, and no parallel regions
opened from its workers (they would slow every later parallel op of the process)."""

import threading

import pytest
import torch

import evomerge.merge.operators.task_arithmetic as task_arithmetic
from evomerge.merge.operators import OPERATORS
from evomerge.merge.operators.side_by_side import _omp_set_num_threads, each


def test_workers_run_torch_ops_on_their_own_thread_only():
    main_threads = torch.get_num_threads()
    seen = each(lambda _: (torch.ones(1 << 20).sum(), torch.get_num_threads())[1], range(4))
    assert torch.get_num_threads() == main_threads
    # torch builds without a bundled GNU OpenMP leave the workers as they are
    assert set(seen) == ({main_threads} if _omp_set_num_threads() is None else {1})
    # a thread made afterwards still starts from the process's own setting
    later = []
    t = threading.Thread(target=lambda: later.append((torch.ones(1 << 20).sum(),
                                                      torch.get_num_threads())[1]))
    t.start()
    t.join()
    assert later == [main_threads]


@pytest.mark.parametrize("method", ["ties", "breadcrumbs_ties"])
def test_side_by_side_sparsification_matches_one_after_another(method, monkeypatch):
    g = torch.Generator().manual_seed(0)
    n = task_arithmetic.SIDE_BY_SIDE_NUMEL
    taus = [torch.randn(n, generator=g) for _ in range(3)]
    assert task_arithmetic.sparsify_in_parallel(taus, random=False)
    op = OPERATORS.get(method)
    params = op.resolve_params({"weight": [1.0, 0.5, 0.7], "density": 0.3}, 3)
    together = op(taus, params)
    monkeypatch.setattr(task_arithmetic, "sparsify_in_parallel", lambda *a: False)
    assert torch.equal(together, op(taus, params))
