"""DARE's and DELLA's random draws: counter-based, so a seed gives the same masks on every
device. The formula computed one number at a time in Python (the reference), the numpy
path (CPU) and the torch path (every other device; run here on CPU tensors) must agree
bit for bit, across chunk and thread-part boundaries and odd sizes."""

import math

import numpy as np
import pytest
import torch

from evomerge.merge.engine import MergeContext
from evomerge.merge.operators import random_drop, seeding
from evomerge.merge.operators.random_drop import (
    KEEP_LEVELS, PARALLEL_WORDS, dare_keeps_reference, drop_by_rank, drop_random,
    first_bytes, keep_level, rank_uniforms, rank_uniforms_reference, second_bytes,
    uniform_lanes)
from evomerge.merge.operators.seeding import (
    DrawKey, TensorSeed, counter_hash, hash_numpy, hash_range_numpy, hash_torch, next_key,
    tensor_generator, tensor_seed)

KEY = next_key(tensor_seed(17, "model.layers.3.mlp.down_proj.weight"))


@pytest.fixture
def torch_path(monkeypatch):
    """Draws on CPU tensors take the path every non-CPU device takes."""
    monkeypatch.setattr(random_drop, "numpy_draws", lambda device: False)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few numbers, so that short draws cross many chunk boundaries."""
    monkeypatch.setattr(seeding, "HASH_CHUNK", 24)
    monkeypatch.setattr(random_drop, "TORCH_CHUNK", 40)


def reference_lanes(key, numel):
    stream = key.stream(0)
    return [(counter_hash(stream, i // 4) >> (8 * (i % 4))) & 0xFF for i in range(numel)]


# --- the hash ----------------------------------------------------------------------------

def test_the_hash_is_pinned():
    # a seeded recipe must rebuild the same model in later versions too: these numbers
    # change only with the formula (lowbias32 of n + k0 with k1 mixed in mid-way)
    assert [counter_hash((0, 0), n) for n in (0, 1, 2)] == [0, 0x688990C0, 0xD1132181]
    # a counter's high half enters with k1: n = 2**32 is n = 0 with k1 = GOLDEN32
    assert counter_hash((0, 0), 1 << 32) == counter_hash((0, 0x9E3779B9), 0) == 0x9F19926A
    assert [counter_hash((0x12345678, 0x9ABCDEF0), n) for n in (0, 7, (1 << 40) + 3)] == [
        0xAF322F13, 0x53DFFF1D, 0x41134678]
    assert next_key(TensorSeed(0)) == DrawKey(0xE220A8397B1DCDAF)  # splitmix64's first
    assert KEY.stream(0) == (0xC8E7460B, 0x256C14A7)


@pytest.mark.parametrize("start", [0, 5, (1 << 32) - 50, (1 << 40) + 11])
def test_hash_paths_equal_the_reference_across_chunks(start, small_chunks):
    stream = KEY.stream(1)
    count = 5 * 24 + 7  # past several 24-number chunks (and past 2**32 from near it)
    expected = [counter_hash(stream, start + j) for j in range(count)]
    out = np.zeros(count, dtype=np.uint32)
    hash_range_numpy(stream, start, out)
    counters = np.arange(start, start + count, dtype=np.uint64)
    assert out.tolist() == expected
    assert hash_numpy(stream, counters).tolist() == expected
    assert hash_torch(stream, torch.from_numpy(counters.astype(np.int64))).tolist() == expected


def test_hash_paths_agree_on_random_counters_and_keys():
    rng = np.random.default_rng(0)
    for _ in range(20):
        key = tuple(int(k) for k in rng.integers(0, 1 << 32, size=2, dtype=np.uint64))
        counters = rng.integers(0, 1 << 62, size=50, dtype=np.uint64)
        expected = [counter_hash(key, int(n)) for n in counters]
        assert hash_numpy(key, counters).tolist() == expected
        assert hash_torch(key, torch.from_numpy(counters.astype(np.int64))).tolist() == expected


def test_hash_range_at_the_default_chunk_size_equals_the_reference():
    stream, count = KEY.stream(0), 2 * seeding.HASH_CHUNK + 3
    out = np.zeros(count, dtype=np.uint32)
    hash_range_numpy(stream, 9, out)
    picks = [0, 1, seeding.HASH_CHUNK - 1, seeding.HASH_CHUNK, 2 * seeding.HASH_CHUNK,
             count - 1]
    assert [int(out[j]) for j in picks] == [counter_hash(stream, 9 + j) for j in picks]
    assert np.array_equal(out, hash_numpy(stream, np.arange(9, 9 + count, dtype=np.uint64)))


# --- keys ---------------------------------------------------------------------------------

def test_a_generator_and_a_tensor_seed_give_the_same_keys():
    name = "model.layers.0.self_attn.q_proj.weight"
    generator, source = tensor_generator(5, name), tensor_seed(5, name)
    keys = [next_key(generator) for _ in range(4)]
    assert keys == [next_key(source) for _ in range(4)]
    assert len(set(keys)) == 4  # each draw (each model of a tensor) has its own key
    # whatever else was drawn from the generator, the keys follow from its seed alone
    other = tensor_generator(5, name)
    torch.rand(1000, generator=other)
    assert next_key(other) == keys[0]
    assert next_key(tensor_seed(5, name + "x")) != keys[0]
    assert next_key(tensor_seed(6, name)) != keys[0]


def test_a_draw_source_must_be_a_generator_or_a_tensor_seed():
    with pytest.raises(TypeError, match="TensorSeed"):
        next_key(123)
    with pytest.raises(ValueError, match="DARE.*TensorSeed"):
        drop_random(torch.ones(4), 0.5, None, "none")
    with pytest.raises(ValueError, match="64-bit"):
        TensorSeed(1 << 64)


# --- DARE's bytes and masks ---------------------------------------------------------------

@pytest.mark.parametrize("numel", [1, 2, 3, 4, 5, 7, 8, 9, 155, 161, 1003])
def test_dare_bytes_on_both_paths_equal_the_reference(numel, small_chunks):
    expected = reference_lanes(KEY, numel)
    assert first_bytes(KEY, numel).tolist() == expected
    words = torch.full((random_drop.lane_words(numel),), -1, dtype=torch.int64)
    random_drop._first_bytes_torch(KEY, numel, words)
    assert words.view(torch.uint8)[:numel].tolist() == expected
    index = torch.arange(numel)
    assert second_bytes(KEY, index).tolist() == [
        counter_hash(KEY.stream(1), i) & 0xFF for i in range(numel)]


def test_long_dare_draws_in_parts_equal_the_unsplit_torch_path(monkeypatch):
    numel = 4 * PARALLEL_WORDS + 13  # drawn in two parts on threads on CPU
    calls = []

    def serial(fn, *iterables):
        calls.append([list(i) for i in iterables])
        return [fn(*args) for args in zip(*iterables)]

    on_cpu = first_bytes(KEY, numel, each=serial).clone()
    assert len(calls) == 1 and len(calls[0][0]) == random_drop.CPU_PARTS
    with MergeContext() as ctx:  # the parts side by side on a builder's pool: same bits
        assert torch.equal(on_cpu, first_bytes(KEY, numel, each=ctx.each))
        assert torch.equal(rank_uniforms(KEY, numel, each=ctx.each),
                           rank_uniforms(KEY, numel, each=serial))
    monkeypatch.setattr(random_drop, "numpy_draws", lambda device: False)
    assert torch.equal(on_cpu, first_bytes(KEY, numel))
    # around the parts' boundary and the ends, against the formula itself
    middle = (random_drop._hash_words(numel) // 2) * 4
    picks = [0, 1, middle - 1, middle, middle + 1, numel - 1]
    reference = reference_lanes(KEY, numel)
    assert [int(on_cpu[i]) for i in picks] == [reference[i] for i in picks]


@pytest.mark.parametrize("density", [0.5, 0.3, 0.0039, 0.999, 0.7])
@pytest.mark.parametrize("path", ["numpy", "torch"])
def test_dare_mask_equals_the_reference_entry_by_entry(density, path, request):
    if path == "torch":
        request.getfixturevalue("torch_path")
    request.getfixturevalue("small_chunks")
    numel = 6007  # about 23 entries tie on the first byte and need the second
    tau = torch.randn(numel, generator=torch.Generator().manual_seed(2)) + 3  # no zeros
    kept = drop_random(tau, density, tensor_seed(3, "w"), "none").materialize()
    key = next_key(tensor_seed(3, "w"))
    expected = torch.tensor(dare_keeps_reference(key, numel, density))
    assert torch.equal(kept != 0, expected)
    high, low = divmod(keep_level(density), 256)
    if low:  # some entries tied on the first byte, and their second bytes split them
        ties = torch.tensor(reference_lanes(key, numel)) == high
        assert 0 < int(expected[ties].sum()) < int(ties.sum())


def test_dare_on_both_paths_gives_the_same_model_for_a_2d_tensor(monkeypatch):
    tau = torch.randn(300, 257, generator=torch.Generator().manual_seed(4))
    results = []
    for numpy_path in (True, False):
        monkeypatch.setattr(random_drop, "numpy_draws", lambda device, v=numpy_path: v)
        generator = tensor_generator(9, "model.embed_tokens.weight")
        # two models of one tensor, drawn in model order from one generator
        results.append([drop_random(tau, d, generator, "l1").materialize() for d in (0.3, 0.6)])
    for on_numpy, on_torch in zip(*results):
        assert torch.equal(on_numpy, on_torch)
    # the second model's mask has a key of its own: it overlaps the first's at 0.3 * 0.6
    # (standard error 0.0014 over 77,100 entries)
    both = ((results[0][0] != 0) & (results[0][1] != 0)).float().mean().item()
    assert abs(both - 0.18) < 0.01


def test_dare_draws_are_unbiased_and_independent():
    # 4M entries at density 0.5: a share has a standard error of 0.00025, 0.0015 is 6 sigma
    n = 1 << 22
    kept = drop_random(torch.ones(n), 0.5, tensor_seed(1, "a"), "none").materialize() != 0
    both = kept[:-1] & kept[1:]  # neighbours share a hash word: still independent
    assert abs(both.float().mean().item() - 0.25) < 0.0015
    by_byte = kept.view(-1, 4).float().mean(dim=0)  # each byte of the hash word
    assert (by_byte - 0.5).abs().max().item() < 0.003
    lanes = uniform_lanes(n, tensor_seed(1, "a")).long()
    counts = torch.bincount(lanes, minlength=256).double()
    chi2 = float(((counts - n / 256) ** 2 / (n / 256)).sum())
    assert chi2 < 255 + 6 * math.sqrt(2 * 255)  # 255 degrees of freedom, 6 sigma
    # the next model's mask is independent of this one's
    source = tensor_seed(1, "a")
    first = drop_random(torch.ones(n), 0.5, source, "none").materialize() != 0
    second = drop_random(torch.ones(n), 0.5, source, "none").materialize() != 0
    assert torch.equal(first, kept)
    assert abs((first & second).float().mean().item() - 0.25) < 0.0015


def test_dare_probability_rescale_is_unbiased_at_a_tie_splitting_level():
    # level 19661 (0.3) needs second bytes; E[kept] = tau entry by entry, checked as sums
    n, density = 1 << 21, 0.3
    p = keep_level(density) / KEEP_LEVELS
    kept = drop_random(torch.ones(n), density, tensor_seed(2, "b"), "probability")
    total = kept.materialize().double().sum().item()
    assert abs(total - n) < 6 * math.sqrt(n * (1 - p) / p)


# --- DELLA's uniforms ---------------------------------------------------------------------

@pytest.mark.parametrize("numel", [1, 5, 64, 1001])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_della_uniforms_on_both_paths_equal_the_reference(numel, dtype, small_chunks):
    expected = rank_uniforms_reference(KEY, numel)
    assert rank_uniforms(KEY, numel, dtype).tolist() == expected
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(random_drop, "numpy_draws", lambda device: False)
        on_torch = rank_uniforms(KEY, numel, dtype)
    assert on_torch.dtype == dtype and on_torch.tolist() == expected


def test_della_mask_equals_the_reference_on_both_paths(monkeypatch):
    tau = torch.randn(7, 33, 5, generator=torch.Generator().manual_seed(3)) + 4
    density, epsilon = 0.5, 0.3
    masks = []
    for numpy_path in (True, False):
        monkeypatch.setattr(random_drop, "numpy_draws", lambda device, v=numpy_path: v)
        masks.append(drop_by_rank(tau, density, epsilon, tensor_seed(4, "c"),
                                  "none").materialize() != 0)
    assert torch.equal(masks[0], masks[1])
    # the rule entry by entry: rows are dim 1 moved last; entry (r, c) uses uniform r*33+c
    rows = tau.movedim(1, -1).reshape(-1, 33)
    uniforms = rank_uniforms_reference(next_key(tensor_seed(4, "c")), rows.numel())
    expected = torch.zeros(rows.shape, dtype=torch.bool)
    for r in range(rows.shape[0]):
        ranks = sorted(range(33), key=lambda c: (abs(float(rows[r, c])), c))
        for rank, c in enumerate(ranks):
            p = density - epsilon + 2 * epsilon * rank / 32
            expected[r, c] = uniforms[r * 33 + c] < p
    assert torch.equal(masks[0], expected.reshape(7, 5, 33).movedim(-1, 1))


def test_della_uniforms_are_uniform():
    n = 1 << 21
    u = rank_uniforms(next_key(tensor_seed(5, "d")), n)
    assert 0 <= u.min().item() and u.max().item() < 1
    counts = torch.histc(u, bins=64, min=0, max=1).double()
    chi2 = float(((counts - n / 64) ** 2 / (n / 64)).sum())
    assert chi2 < 63 + 6 * math.sqrt(2 * 63)
    assert abs((u[:-1] * u[1:]).mean().item() - 0.25) < 0.002  # neighbours independent
