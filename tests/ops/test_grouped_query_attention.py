"""Grouped-query attention (num_kv_heads < num_heads) in multi_head_attention, the varlen entry point and KVCache,
against the float64 reference run on K/V repeated per query head (Hugging Face's repeat_kv)."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from helpers import rand


def repeat_kv(x: np.ndarray, kv_heads: int, heads: int) -> np.ndarray:
    """[..., KVH * D] -> [..., H * D]: KV head g repeated for query heads g * (H // KVH) ... (g + 1) * (H // KVH) - 1."""
    d = x.shape[-1] // kv_heads
    split = x.reshape(x.shape[:-1] + (kv_heads, 1, d))
    return np.broadcast_to(split, x.shape[:-1] + (kv_heads, heads // kv_heads, d)).reshape(x.shape[:-1] + (heads * d,))


def gqa_reference(q, k, v, heads, kv_heads, mask=None, causal=False):
    return ref.attention(q, repeat_kv(k, kv_heads, heads), repeat_kv(v, kv_heads, heads), heads, mask, causal)


GROUPS = [(6, 2), (4, 1), (3, 3), (8, 4)]


@pytest.mark.parametrize("heads, kv_heads", GROUPS)
@pytest.mark.parametrize("dim", [16, 33, 64])
def test_padded_matches_repeated_kv_reference(isa, heads, kv_heads, dim):
    rng = np.random.default_rng(heads * 100 + kv_heads * 10 + dim)
    batch, tq, tk = 2, 70, 70  # crosses the 64-query and 64-key blocks
    q = rand(rng, batch, tq, heads * dim)
    k, v = rand(rng, batch, tk, kv_heads * dim), rand(rng, batch, tk, kv_heads * dim)
    mask = np.ones((batch, tk), np.int64)
    mask[1, :9] = 0  # left padding in sequence 1
    for causal in (False, True):
        out = ops.multi_head_attention(q, k, v, heads, mask, causal=causal, num_kv_heads=kv_heads)
        assert out.shape == q.shape
        ref.assert_close(out, gqa_reference(q, k, v, heads, kv_heads, mask, causal), "attention")


def test_fused_qkv_views_with_kv_heads_are_read_in_place(isa):
    # Q | K | V of one fused projection with 6 query heads and 2 KV heads, sliced without copies.
    rng = np.random.default_rng(3)
    heads, kv_heads, d, t = 6, 2, 32, 40
    qkv = rand(rng, 2, t, (heads + 2 * kv_heads) * d)
    q, k, v = qkv[..., :heads * d], qkv[..., heads * d:(heads + kv_heads) * d], qkv[..., (heads + kv_heads) * d:]
    out = ops.multi_head_attention(q, k, v, heads, causal=True, num_kv_heads=kv_heads)
    ref.assert_close(out, gqa_reference(q, k, v, heads, kv_heads, causal=True), "attention")


@pytest.mark.parametrize("causal", [False, True])
def test_varlen_matches_repeated_kv_reference(isa, causal):
    rng = np.random.default_rng(4)
    heads, kv_heads, d = 6, 2, 40
    lengths = [5, 70, 1, 130]
    cu = np.concatenate([[0], np.cumsum(lengths)])
    q = rand(rng, cu[-1], heads * d)
    k, v = rand(rng, cu[-1], kv_heads * d), rand(rng, cu[-1], kv_heads * d)
    out = ops.multi_head_attention_varlen(q, k, v, cu, heads, causal=causal, num_kv_heads=kv_heads)
    for b, n in enumerate(lengths):
        s = slice(cu[b], cu[b + 1])
        expected = gqa_reference(q[None, s], k[None, s], v[None, s], heads, kv_heads, causal=causal)[0]
        ref.assert_close(out[s], expected, "attention")


@pytest.mark.parametrize("tk", [5, 300, 1500])
def test_decode_query_with_key_splits_and_mask(isa, two_threads, tk):
    # One query per head over a long key range: few tasks, so long ranges are split across threads and merged.
    rng = np.random.default_rng(tk)
    heads, kv_heads, d = 4, 1, 64
    q = rand(rng, 1, 1, heads * d)
    k, v = rand(rng, 1, tk, kv_heads * d), rand(rng, 1, tk, kv_heads * d)
    mask = np.ones((1, tk), np.int64)
    mask[0, : tk // 3] = 0
    for m in (None, mask):
        out = ops.multi_head_attention(q, k, v, heads, m, causal=True, num_kv_heads=kv_heads)
        ref.assert_close(out, gqa_reference(q, k, v, heads, kv_heads, m, causal=True), "attention")


def test_kv_cache_stores_each_kv_head_once_and_decodes_like_full_attention(isa, two_threads):
    rng = np.random.default_rng(5)
    layers, batch, heads, kv_heads, d, prompt, steps = 2, 3, 6, 2, 48, 600, 5
    total = prompt + steps
    cache = ops.KVCache(layers, batch, heads, d, max_len=total, num_kv_heads=kv_heads)
    assert (cache.num_heads, cache.num_kv_heads) == (heads, kv_heads)
    q = rand(rng, layers, batch, total, heads * d)
    k, v = rand(rng, layers, batch, total, kv_heads * d), rand(rng, layers, batch, total, kv_heads * d)
    pads = np.array([0, 7, 300])  # left padding per row; row 2's padding covers a whole key split
    mask = (np.arange(total)[None, :] >= pads[:, None]).astype(np.uint8)
    out = np.zeros((layers, batch, total, heads * d), np.float32)
    for layer in range(layers):
        cache.append(layer, k[layer, :, :prompt], v[layer, :, :prompt])
        out[layer, :, :prompt] = cache.attend(layer, q[layer, :, :prompt], mask[:, :prompt])
    for t in range(prompt, total):
        for layer in range(layers):
            cache.append(layer, k[layer, :, t:t + 1], v[layer, :, t:t + 1])
            out[layer, :, t:t + 1] = cache.attend(layer, q[layer, :, t:t + 1], mask[:, :t + 1])
    for layer in range(layers):
        real = mask.astype(bool)
        expected = gqa_reference(q[layer], k[layer], v[layer], heads, kv_heads, mask, causal=True)
        ref.assert_close(out[layer][real], expected[real], "attention")
        # stored once per KV head: the copies are exactly what was appended, kv_heads * d wide
        np.testing.assert_array_equal(cache.keys(layer), k[layer])
        np.testing.assert_array_equal(cache.values(layer), v[layer])


def test_kv_cache_rows_with_kv_heads(isa):
    rng = np.random.default_rng(6)
    heads, kv_heads, d = 4, 2, 32
    cache = ops.KVCache(1, 4, heads, d, max_len=50, num_kv_heads=kv_heads)
    k, v = rand(rng, 2, 20, kv_heads * d), rand(rng, 2, 20, kv_heads * d)
    q = rand(rng, 2, 1, heads * d)
    cache.append(0, k[:, :19], v[:, :19], rows=[3, 1])
    cache.append(0, k[:, 19:], v[:, 19:], rows=[3, 1])
    out = cache.attend(0, q, rows=[3, 1])
    ref.assert_close(out, gqa_reference(q, k, v, heads, kv_heads, causal=True), "attention")
    np.testing.assert_array_equal(cache.lengths(0), [0, 20, 0, 20])


def test_default_kv_heads_is_plain_multi_head_attention(isa):
    rng = np.random.default_rng(7)
    q, k, v = (rand(rng, 1, 9, 3 * 16) for _ in range(3))
    np.testing.assert_array_equal(ops.multi_head_attention(q, k, v, 3, num_kv_heads=3),
                                  ops.multi_head_attention(q, k, v, 3))
    assert ops.KVCache(1, 1, 3, 16, 8).num_kv_heads == 3


@pytest.mark.parametrize("call, error, message", [
    (lambda q, k: ops.multi_head_attention(q, k, k, 6, num_kv_heads=4), ValueError, "divide num_heads=6, got 4"),
    (lambda q, k: ops.multi_head_attention(q, k, k, 6, num_kv_heads=0), ValueError, "num_kv_heads must be >= 1"),
    (lambda q, k: ops.multi_head_attention(q, k, k, 6, num_kv_heads=2.0), TypeError, "num_kv_heads must be an int"),
    (lambda q, k: ops.multi_head_attention(q, k, k, 6, num_kv_heads=3), ValueError, "k must have shape (1, k_len, 48)"),
    (lambda q, k: ops.multi_head_attention(q, k, k, 6), ValueError, "k must have shape (1, k_len, 96)"),
    (lambda q, k: ops.multi_head_attention_varlen(q[0], k[0], k[0], np.array([0, 5]), 6, num_kv_heads=3),
     ValueError, "k must have shape (5, 48)"),
    (lambda q, k: ops.KVCache(1, 1, 6, 16, 8, num_kv_heads=4), ValueError, "divide num_heads=6, got 4"),
    (lambda q, k: ops.KVCache(1, 1, 6, 16, 8, num_kv_heads=-1), ValueError, "num_kv_heads must be >= 1"),
    (lambda q, k: ops.KVCache(1, 1, 6, 16, 8, num_kv_heads=2).append(0, q, q), ValueError,
     "k must have shape (1, tokens, 32)"),
    (lambda q, k: ops.KVCache(1, 1, 6, 16, 8, num_kv_heads=2).attend(0, k), ValueError,
     "q must have shape (1, tokens, 96)"),
])
def test_bad_kv_heads_name_the_problem(call, error, message):
    rng = np.random.default_rng(8)
    q, k = rand(rng, 1, 5, 6 * 16), rand(rng, 1, 5, 2 * 16)
    with pytest.raises(error, match=__import__("re").escape(message)):
        call(q, k)


def test_kv_cache_reorder_moves_every_kv_head(isa):
    # beam search's reorder on a grouped cache: rows are [kv_heads, max_len, d] blocks, all of them move
    rng = np.random.default_rng(9)
    heads, kv_heads, d = 6, 2, 16
    cache = ops.KVCache(2, 3, heads, d, max_len=12, num_kv_heads=kv_heads)
    k, v = rand(rng, 2, 3, 7, kv_heads * d), rand(rng, 2, 3, 7, kv_heads * d)
    for layer in range(2):
        cache.append(layer, k[layer], v[layer])
    cache.reorder(np.array([2, 2, 0]))
    for layer in range(2):
        np.testing.assert_array_equal(cache.keys(layer), k[layer][[2, 2, 0]])
        np.testing.assert_array_equal(cache.values(layer), v[layer][[2, 2, 0]])
    q = rand(rng, 3, 1, heads * d)
    kk, vv = k[1][[2, 2, 0]], v[1][[2, 2, 0]]
    ref.assert_close(cache.attend(1, q, causal=False), gqa_reference(q, kk, vv, heads, kv_heads), "attention")
