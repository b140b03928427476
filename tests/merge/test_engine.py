"""The merge context: what it keeps changes how fast operators run, never what they return.

Used buffers, a running pool and remembered values give the tensors a fresh context gives;
values are remembered under the builder's names for its inputs (not by tensor identity),
only when the builder gives names, and the pool runs only between first use and close.
"""

import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evomerge.merge.engine import MergeContext
from evomerge.merge.operators import OPERATOR_LIST, OPERATORS, topk
from evomerge.merge.operators.reductions import l1_norm
from evomerge.merge.operators.sparse import TASK_VECTOR_L1


def keyed() -> MergeContext:
    return MergeContext(input_key=lambda model, name: (model, name))


def inputs_and_params(op, n=3, shape=(6, 8)):
    g = torch.Generator().manual_seed(11)
    tensors = [torch.randn(shape, generator=g) * 0.1 for _ in range(n)]
    given = {"t": 0.3} if op.name in ("slerp", "nearswap") else {}
    names = {spec.name for spec in op.params}
    n = min(n, op.max_models or n)
    if "weight" in names:
        given["weight"] = [1.0, 0.6, -0.3][:n]
    if "density" in names:
        given["density"] = 0.5
    return tensors[:n], op.resolve_params(given, n)


def generator(op):
    return torch.Generator().manual_seed(5) if op.random else None


@pytest.mark.parametrize("op", OPERATOR_LIST, ids=[op.name for op in OPERATOR_LIST])
def test_a_used_context_gives_what_a_fresh_one_gives_and_writes_into_out(op):
    tensors, params = inputs_and_params(op)
    want = op(tensors, params, generator=generator(op))
    with MergeContext() as ctx:
        # buffers left over from a larger tensor, full of NaN: none of it may leak through
        for name in [*(("kept", i) for i in range(3)), *(("chunk", i) for i in range(8)),
                     ("task vector", 0)]:
            ctx.buffers.get(name, (100,), torch.float32).fill_(float("nan"))
        out = torch.full_like(want, float("nan"))
        got = op(tensors, params, generator=generator(op), ctx=ctx, out=out)
        again = op(tensors, params, generator=generator(op), ctx=ctx)
    assert got.data_ptr() == out.data_ptr()
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    torch.testing.assert_close(again, want, atol=0, rtol=0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.001, 0.999), st.booleans(),
       st.sampled_from(["ties", "breadcrumbs_ties"]))
def test_a_remembered_order_is_found_by_name_and_gives_the_scanned_merge(seed, density,
                                                                         repeated, method):
    g = torch.Generator().manual_seed(seed)
    taus = [torch.randn(300, 240, generator=g) for _ in range(2)]
    if repeated:  # few distinct values, as between bf16 checkpoints: many ties at the cut
        taus = [torch.round(t * 4) / 4 for t in taus]
    op = OPERATORS.get(method)
    params = op.resolve_params({"weight": [1.0, 0.7], "density": density}, 2)
    scanned = op(taus, params)
    ctx = keyed()
    for i, tau in enumerate(taus):
        topk.remember_order(ctx, "model", f"t{i}", tau)
    call = ctx.for_inputs([("model", "t0"), ("model", "t1")])
    assert all(call.recall(i, topk.SORTED_MAGNITUDES) is not None for i in range(2))
    # other tensor objects with the same values: found by name, not by identity
    assert torch.equal(op([t.clone() for t in taus], params, ctx=call), scanned)


def test_a_remembered_order_is_what_the_trim_reads():
    """The order read is the remembered one: under another input's name it cuts
    elsewhere (a builder must remember an input's own order under its name)."""
    small, large = torch.linspace(-1, 1, 101), torch.linspace(-5, 5, 101)
    op = OPERATORS.get("ties")
    params = op.resolve_params({"weight": 1.0, "density": 0.3}, 1)
    ctx = keyed()
    topk.remember_order(ctx, "m", "large", large)
    misnamed = op([small], params, ctx=ctx.for_inputs([("m", "large")]))
    assert not torch.equal(misnamed, op([small], params))
    assert torch.equal(op([small], params, ctx=ctx.for_inputs([("m", "small")])),
                       op([small], params))


@pytest.mark.parametrize("method", ["dare_ties", "della", "ties"])
def test_a_task_vectors_l1_norm_is_remembered_under_its_name(method):
    op = OPERATORS.get(method)
    taus = [torch.randn(64, 48, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    params = op.resolve_params({"weight": [1.0, 0.5], "density": 0.4, "rescale": True}, 2)
    want = op(taus, params, generator=generator(op))
    ctx = keyed()
    call = ctx.for_inputs([("a", "w"), ("b", "w")])
    assert torch.equal(op(taus, params, generator=generator(op), ctx=call), want)
    assert [call.recall(i, TASK_VECTOR_L1) for i in range(2)] == [l1_norm(t) for t in taus]
    # a remembered norm is used as it is: a wrong one changes the rescale
    ctx.remember("a", "w", TASK_VECTOR_L1, 2 * l1_norm(taus[0]))
    assert not torch.equal(op(taus, params, generator=generator(op), ctx=call), want)


def test_a_context_without_input_names_remembers_nothing():
    op = OPERATORS.get("dare_linear")
    taus = [torch.randn(100), torch.randn(100)]
    params = op.resolve_params({"weight": 1.0, "density": 0.5}, 2)
    ctx = MergeContext()
    call = ctx.for_inputs([("a", "w"), ("b", "w")])
    op(taus, params, generator=generator(op), ctx=call)
    assert call.recall(0, TASK_VECTOR_L1) is None
    assert call.remembered(0, "count", lambda: 1) == 1
    assert call.remembered(0, "count", lambda: 2) == 2  # computed each time
    with pytest.raises(ValueError, match="remembers nothing"):
        topk.remember_order(ctx, "a", "w", taus[0])


def _pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("evomerge-op")}


def test_the_pool_starts_on_first_use_and_stops_on_close():
    before = _pool_threads()
    ctx = MergeContext()
    view = ctx.for_inputs([("a", "w")])
    assert _pool_threads() == before  # nothing runs until something is submitted
    assert view.each(lambda x: x * 2, [1, 2, 3]) == [2, 4, 6]
    started = _pool_threads() - before
    assert started
    assert ctx.each(np.sum, [np.ones(3)]) == [3.0]  # the view's pool is the owner's
    assert _pool_threads() - before == started
    ctx.close()
    assert not any(t.is_alive() for t in started)
    assert ctx.each(lambda x: x, [7]) == [7]  # usable again: a new pool, closed below
    ctx.close()
    assert _pool_threads() <= before


def test_pool_workers_run_torch_ops_on_their_own_thread_only():
    from evomerge.merge.engine import _omp_set_num_threads

    main_threads = torch.get_num_threads()
    with MergeContext() as ctx:
        seen = ctx.each(lambda _: (torch.ones(1 << 20).sum(), torch.get_num_threads())[1],
                        range(4))
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


def test_sample_positions_are_kept_per_tensor_size_and_change_nothing():
    from evomerge.merge.operators.topk import _sample_positions, _sample_size

    op = OPERATORS.get("breadcrumbs_ties")
    g = torch.Generator().manual_seed(4)
    taus = [torch.randn(400, 300, generator=g) for _ in range(2)]  # sampled, not sorted
    params = op.resolve_params({"weight": [1.0, 0.5], "density": 0.6, "gamma": 0.1}, 2)
    ctx = MergeContext()
    first = op(taus, params, ctx=ctx)
    n = taus[0].numel()
    kept = ctx.memo(("sample positions", n, _sample_size(n)), lambda: None)
    assert torch.equal(kept, _sample_positions(n, _sample_size(n)))
    assert torch.equal(op(taus, params, ctx=ctx), first)
    assert torch.equal(op(taus, params), first)
