"""KVCache: incremental decoding equals full attention; storage, lengths, trimming and every error message."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from helpers import rand, run_in_threads

@pytest.mark.parametrize("dim", [33, 64, 80])
def test_incremental_decode_equals_full_causal_attention(isa, dim):
    rng = np.random.default_rng(dim)
    layers, batch, heads, prompt, steps = 2, 2, 3, 70, 12
    total = prompt + steps
    hd = heads * dim
    cache = ops.KVCache(layers, batch, heads, dim, max_len=total)
    q, k, v = (rand(rng, layers, batch, total, hd) for _ in range(3))
    outputs = np.zeros((layers, batch, total, hd), np.float32)
    for layer in range(layers):  # prefill
        cache.append(layer, k[layer, :, :prompt], v[layer, :, :prompt])
        outputs[layer, :, :prompt] = cache.attend(layer, q[layer, :, :prompt])
    for t in range(prompt, total):  # one token at a time
        for layer in range(layers):
            cache.append(layer, k[layer, :, t:t + 1], v[layer, :, t:t + 1])
            outputs[layer, :, t:t + 1] = cache.attend(layer, q[layer, :, t:t + 1])
    for layer in range(layers):
        full = ops.multi_head_attention(q[layer], k[layer], v[layer], heads, causal=True)
        ref.assert_close(outputs[layer], full, "attention_paths")
        ref.assert_close(outputs[layer], ref.attention(q[layer], k[layer], v[layer], heads, causal=True), "attention")
    np.testing.assert_array_equal(cache.lengths(1), [total, total])


def test_left_padded_batch_with_mask(isa):
    rng = np.random.default_rng(1)
    batch, heads, dim, prompt = 3, 2, 64, 9
    pads = np.array([0, 4, 8])
    cache = ops.KVCache(1, batch, heads, dim, max_len=32)
    k, v, q = (rand(rng, batch, prompt + 3, heads * dim) for _ in range(3))
    mask = (np.arange(prompt + 3)[None, :] >= pads[:, None]).astype(np.int64)
    byte_mask = np.ones((batch, 32), np.uint8)
    byte_mask[:, :prompt + 3] = mask
    cache.append(0, k[:, :prompt], v[:, :prompt])
    out = cache.attend(0, q[:, :prompt], mask[:, :prompt])
    ref.assert_close(out, ref.attention(q[:, :prompt], k[:, :prompt], v[:, :prompt], heads, mask[:, :prompt], True),
                     "attention")
    for t in range(prompt, prompt + 3):
        cache.append(0, k[:, t:t + 1], v[:, t:t + 1])
        step = cache.attend(0, q[:, t:t + 1], mask[:, :t + 1].astype(bool))
        expected = ref.attention(q[:, t:t + 1], k[:, :t + 1], v[:, :t + 1], heads, mask[:, :t + 1], True)
        ref.assert_close(step, expected, "attention")
        # a column slice of one uint8 mask (what generation passes) is read in place and gives the same
        np.testing.assert_array_equal(cache.attend(0, q[:, t:t + 1], byte_mask[:, :t + 1]), step)


def test_long_decode_uses_key_splits(isa, two_threads):
    rng = np.random.default_rng(2)
    cache = ops.KVCache(1, 1, 1, 128, max_len=2048)
    k, v, q = rand(rng, 1, 2000, 128), rand(rng, 1, 2000, 128), rand(rng, 1, 1, 128)
    cache.append(0, k, v)
    ref.assert_close(cache.attend(0, q), ref.attention(q, k, v, 1, causal=True), "attention")


def test_fused_qkv_views_append_and_attend(isa):
    rng = np.random.default_rng(3)
    batch, heads, dim, t = 2, 4, 32, 10
    hd = heads * dim
    qkv = rand(rng, batch, t, 3 * hd)
    q, k, v = qkv[..., :hd], qkv[..., hd:2 * hd], qkv[..., 2 * hd:]
    cache = ops.KVCache(1, batch, heads, dim, max_len=16)
    cache.append(0, k, v)
    np.testing.assert_array_equal(cache.keys(0), k)
    np.testing.assert_array_equal(cache.values(0), v)
    np.testing.assert_array_equal(cache.attend(0, q), ops.multi_head_attention(q, k, v, heads, causal=True))


def test_not_causal_and_scale_and_out(isa):
    rng = np.random.default_rng(4)
    cache = ops.KVCache(1, 2, 2, 16, max_len=8)
    k, v, q = rand(rng, 2, 5, 32), rand(rng, 2, 5, 32), rand(rng, 2, 3, 32)
    cache.append(0, k, v)
    out = np.empty((2, 3, 32), np.float32)
    assert cache.attend(0, q, causal=False, scale=0.2, out=out) is out
    ref.assert_close(out, ref.attention(q, k, v, 2, scale=0.2), "attention")


def test_lengths_reset_trim_and_copies():
    rng = np.random.default_rng(5)
    cache = ops.KVCache(2, 2, 2, 8, max_len=10)
    assert (cache.num_layers, cache.batch, cache.num_heads, cache.head_dim, cache.max_len) == (2, 2, 2, 8, 10)
    assert repr(cache) == "KVCache(num_layers=2, batch=2, num_heads=2, head_dim=8, max_len=10)"
    k, v = rand(rng, 2, 6, 16), rand(rng, 2, 6, 16)
    cache.append(0, k[:, :4], v[:, :4])
    cache.append(0, k[:, 4:], v[:, 4:])
    cache.append(1, k[:, :2], v[:, :2])
    assert cache.lengths().dtype == np.int64
    np.testing.assert_array_equal(cache.lengths(), [6, 6])
    np.testing.assert_array_equal(cache.lengths(1), [2, 2])
    np.testing.assert_array_equal(cache.keys(0), k)
    np.testing.assert_array_equal(cache.values(1), v[:, :2])
    cache.keys(0)[:] = 0  # a copy: the cache is untouched
    np.testing.assert_array_equal(cache.keys(0), k)
    cache.trim(3)
    np.testing.assert_array_equal(cache.lengths(0), [3, 3])
    np.testing.assert_array_equal(cache.lengths(1), [2, 2])
    np.testing.assert_array_equal(cache.keys(0), k[:, :3])
    cache.reset()
    np.testing.assert_array_equal(cache.lengths(0), [0, 0])
    assert cache.keys(1).shape == (2, 0, 16)
    # Attending an empty cache: no key is visible, zeros.
    assert not cache.attend(0, rand(rng, 2, 1, 16)).any()


def test_threads_attending_and_appending_concurrently():
    rng = np.random.default_rng(6)
    caches = [ops.KVCache(1, 1, 2, 32, max_len=400) for _ in range(4)]
    ks = [rand(rng, 1, 300, 64) for _ in caches]
    q = rand(rng, 1, 1, 64)

    def work(cache, k):
        for start in range(0, 300, 30):
            cache.append(0, k[:, start:start + 30], k[:, start:start + 30])
            caches[0].attend(0, q)  # shared cache, read while others append to it

    run_in_threads(work, list(zip(caches, ks)))
    for c, k in zip(caches, ks):
        np.testing.assert_array_equal(c.keys(0), k)
        ref.assert_close(c.attend(0, q), ref.attention(q, k, k, 2, causal=True), "attention")


def _bad_cases():
    cache = ops.KVCache(2, 2, 2, 4, max_len=5)
    good = np.zeros((2, 3, 8), np.float32)
    full = ops.KVCache(1, 1, 1, 4, max_len=3)
    full.append(0, np.zeros((1, 3, 4), np.float32), np.zeros((1, 3, 4), np.float32))
    one = np.zeros((1, 1, 4), np.float32)
    return [
        (lambda: ops.KVCache(0, 1, 1, 1, 1), ValueError, "KVCache: num_layers must be >= 1, got 0"),
        (lambda: ops.KVCache(1, 1, 1, 0, 1), ValueError, "KVCache: head_dim must be >= 1, got 0"),
        (lambda: ops.KVCache(1, 1, 1, 1, -3), ValueError, "KVCache: max_len must be >= 1, got -3"),
        (lambda: ops.KVCache(1 << 20, 1 << 20, 1 << 20, 64, 64), ValueError, "is too large"),
        (lambda: full.append(0, one, one), ValueError,
         r"KVCache.append: 1 more tokens on layer 0 \(sequence 0 holds 3\) would exceed max_len=3"),
        (lambda: cache.append(0, np.zeros((2, 6, 8), np.float32), np.zeros((2, 6, 8), np.float32)), ValueError,
         "would exceed max_len=5"),
        (lambda: cache.append(2, good, good), ValueError, r"layer must be in \[0, 2\), got 2"),
        (lambda: cache.append(-1, good, good), ValueError, r"layer must be in \[0, 2\), got -1"),
        (lambda: cache.attend(5, good), ValueError, r"layer must be in \[0, 2\), got 5"),
        (lambda: cache.lengths(2), ValueError, r"layer must be in \[0, 2\), got 2"),
        (lambda: cache.keys(7), ValueError, r"layer must be in \[0, 2\), got 7"),
        (lambda: cache.append(0, np.zeros((2, 3, 6), np.float32), good), ValueError,
         r"k must have shape \(2, tokens, 8\), got \(2, 3, 6\)"),
        (lambda: cache.append(0, good, np.zeros((2, 2, 8), np.float32)), ValueError,
         r"v must have the shape of k \(2, 3, 8\), got \(2, 2, 8\)"),
        (lambda: cache.append(0, good.astype(np.float16), good), TypeError, "k must have dtype float32, got float16"),
        (lambda: cache.attend(0, np.zeros((3, 1, 8), np.float32)), ValueError,
         r"q must have shape \(2, tokens, 8\), got \(3, 1, 8\)"),
        (lambda: cache.attend(0, good, np.ones((2, 4))), ValueError,
         r"attention_mask must have shape \(2, 0\), got \(2, 4\)"),
        (lambda: full.attend(0, one, np.array([[1, 0.5, 1]])), ValueError,
         r"attention_mask must contain only 0 and 1 \(1 = attend, 0 = padding\), got 0.5 at \[0, 1\]"),
        (lambda: cache.attend(0, good, out=np.zeros((2, 3, 9), np.float32)), ValueError,
         r"out must have shape \(2, 3, 8\), got \(2, 3, 9\)"),
        (lambda: cache.attend(0, good, out=good), ValueError, "out must not share memory with q, k or v"),
        (lambda: cache.trim(-1), ValueError, r"KVCache.trim: length must be in \[0, max_len=5\], got -1"),
        (lambda: cache.trim(6), ValueError, r"KVCache.trim: length must be in \[0, max_len=5\], got 6"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_inputs_name_the_problem(case):
    call, exc, message = _bad_cases()[case]
    with pytest.raises(exc, match=message):
        call()


def test_failed_append_changes_nothing():
    cache = ops.KVCache(1, 1, 1, 4, max_len=3)
    x = np.ones((1, 2, 4), np.float32)
    cache.append(0, x, x)
    with pytest.raises(ValueError, match="would exceed max_len=3"):
        cache.append(0, x, x)
    np.testing.assert_array_equal(cache.lengths(0), [2])
    np.testing.assert_array_equal(cache.keys(0), x)


# --- rows: cache rows that advance independently (continuous batching) ------------------------------------------

def test_rows_advance_independently_and_each_equals_its_own_attention(isa):
    """Three sequences join at different times with different prompts; each step decodes a changing subset of
    rows. Every output equals causal attention over that sequence alone."""
    rng = np.random.default_rng(7)
    heads, dim, max_len = 2, 24, 40
    hd = heads * dim
    cache = ops.KVCache(2, 4, heads, dim, max_len)
    seqs = {row: [rand(rng, 1, n, hd) for _ in range(3)] for row, n in ((3, 30), (0, 5), (2, 17))}
    filled = {row: 0 for row in seqs}

    def run(rows, tokens):
        qs, ks, vs = ([np.concatenate([seqs[r][i][:, filled[r]:filled[r] + tokens] for r in rows])
                       for i in range(3)])
        for layer in range(2):
            cache.append(layer, ks, vs, rows=np.array(rows))
            out = cache.attend(layer, qs, rows=rows)
            for i, r in enumerate(rows):
                end = filled[r] + tokens
                q, k, v = (s[:, :end] for s in seqs[r])
                expected = ref.attention(q, k, v, heads, causal=True)[:, filled[r]:end]
                ref.assert_close(out[i:i + 1], expected, "attention")
        for r in rows:
            filled[r] += tokens

    run([3], 20)            # a long prompt alone
    run([0], 3)             # a second request joins with its own prompt
    run([3, 0], 1)          # they decode together
    run([2], 10)            # a third joins
    run([0, 2, 3], 1)       # rows in any order
    run([2], 1)             # only one row steps
    np.testing.assert_array_equal(cache.lengths(1), [filled[0], 0, filled[2], filled[3]])
    assert cache.lengths(0)[3] == 22


def test_reset_rows_frees_them_for_reuse(isa):
    rng = np.random.default_rng(8)
    cache = ops.KVCache(1, 3, 1, 16, max_len=8)
    k = rand(rng, 3, 6, 16)
    cache.append(0, k, k)
    cache.reset(rows=[1])
    np.testing.assert_array_equal(cache.lengths(0), [6, 0, 6])
    fresh = rand(rng, 1, 8, 16)  # the freed row takes a new sequence up to max_len
    cache.append(0, fresh, fresh, rows=[1])
    q = rand(rng, 1, 1, 16)
    ref.assert_close(cache.attend(0, q, rows=[1]), ref.attention(q, fresh, fresh, 1, causal=True), "attention")
    ref.assert_close(cache.attend(0, q, rows=np.array([2], np.int32)),
                     ref.attention(q, k[2:], k[2:], 1, causal=True), "attention")
    cache.reset()
    np.testing.assert_array_equal(cache.lengths(0), [0, 0, 0])


def test_rows_with_a_mask_cover_the_longest_of_those_rows():
    rng = np.random.default_rng(9)
    cache = ops.KVCache(1, 3, 1, 8, max_len=8)
    k = rand(rng, 1, 5, 8)
    cache.append(0, k, k, rows=[2])
    cache.append(0, k[:, :2], k[:, :2], rows=[0])
    mask = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 1, 1]])
    q = rand(rng, 2, 1, 8)
    out = cache.attend(0, q, mask, rows=[0, 2])
    ref.assert_close(out[:1], ref.attention(q[:1], k[:, :2], k[:, :2], 1, mask[:1, :2], True), "attention")
    ref.assert_close(out[1:], ref.attention(q[1:], k, k, 1, mask[1:], True), "attention")


def _bad_rows_cases():
    cache = ops.KVCache(1, 3, 1, 4, max_len=4)
    x = np.zeros((2, 1, 4), np.float32)
    one = np.zeros((1, 1, 4), np.float32)
    full = ops.KVCache(1, 2, 1, 4, max_len=2)
    full.append(0, np.zeros((1, 2, 4), np.float32), np.zeros((1, 2, 4), np.float32), rows=[1])
    return [
        (lambda: cache.append(0, x, x, rows=[0, 3]), ValueError, r"rows must be cache rows in \[0, 3\), got 3"),
        (lambda: cache.append(0, x, x, rows=[-1, 0]), ValueError, r"rows must be cache rows in \[0, 3\), got -1"),
        (lambda: cache.append(0, x, x, rows=[1, 1]), ValueError, "rows must be distinct, got row 1 twice"),
        (lambda: cache.append(0, x, x, rows=[]), ValueError, "rows must name at least one cache row"),
        (lambda: cache.append(0, x, x, rows=[0]), ValueError, r"k must have shape \(1, tokens, 4\), got \(2, 1, 4\)"),
        (lambda: cache.attend(0, x, rows=np.array([[0, 1]])), ValueError, r"rows must be 1-D, got shape \(1, 2\)"),
        (lambda: cache.attend(0, x, rows=np.array([0.0, 1.0])), TypeError, "rows must have an integer dtype"),
        (lambda: cache.attend(0, x, rows=[0, "1"]), TypeError, "rows must hold ints, got str"),
        (lambda: cache.reset(rows=[5]), ValueError, r"rows must be cache rows in \[0, 3\), got 5"),
        (lambda: cache.attend(0, x, np.ones((2, 1)), rows=[0, 1]), ValueError,
         r"attention_mask must have shape \(2, 0\), got \(2, 1\)"),
        (lambda: full.append(0, one, one, rows=[1]), ValueError,
         r"1 more tokens on layer 0 \(sequence 1 holds 2\) would exceed max_len=2"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_rows_cases())))
def test_bad_rows_name_the_problem(case):
    call, exc, message = _bad_rows_cases()[case]
    with pytest.raises(exc, match=message):
        call()


def test_reorder_copies_rows_with_repeats_and_cycles_and_their_lengths():
    """Beam search's reorder: row b becomes old row source[b] (repeats and a permutation cycle), per layer, with
    each row's own length; checked against numpy indexing of the copies taken before."""
    rng = np.random.default_rng(7)
    layers, batch, heads, dim = 2, 5, 3, 7
    cache = ops.KVCache(layers, batch, heads, dim, max_len=12)
    for layer in range(layers):
        cache.append(layer, rand(rng, batch, 6, heads * dim), rand(rng, batch, 6, heads * dim))
    cache.append(0, rand(rng, 2, 3, heads * dim), rand(rng, 2, 3, heads * dim), rows=[1, 3])  # uneven lengths
    before = [(cache.keys(l), cache.values(l), cache.lengths(l)) for l in range(layers)]
    source = np.array([3, 0, 1, 1, 4])  # 0 <- 3, 1 <- 0, 2 <- 1, 3 <- 1: a cycle through 0, 1, 3 and a repeat
    cache.reorder(source)
    for layer, (keys, values, lengths) in enumerate(before):
        np.testing.assert_array_equal(cache.lengths(layer), lengths[source])
        longest = lengths[source].max()
        for b, s in enumerate(source):
            n = lengths[s]
            np.testing.assert_array_equal(cache.keys(layer)[b, :n], keys[s, :n])
            np.testing.assert_array_equal(cache.values(layer)[b, :n], values[s, :n])
            assert cache.keys(layer).shape[1] == longest


@pytest.mark.parametrize("source, message", [
    (np.array([0, 1]), r"one entry per cache row \(3\), got 2"),
    (np.array([0, 1, 3]), r"source rows must be in \[0, 3\), got 3"),
    (np.array([0, -1, 2]), r"got -1"),
    (np.zeros((3, 1), np.int64), r"source must be 1-D"),
])
def test_bad_reorder_sources_are_rejected(source, message):
    cache = ops.KVCache(1, 3, 1, 4, max_len=4)
    with pytest.raises(ValueError, match=message):
        cache.reorder(source)
