"""multi_head_attention / multi_head_attention_varlen against the float64 numpy reference and torch SDPA."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from helpers import given, num_threads, rand, run_in_threads, settings, st
from make_attention_reference import make_reference

HEAD_DIMS = [32, 33, 64, 65, 80, 96, 128]


def _qkv(rng, batch, tq, tk, heads, dim):
    return rand(rng, batch, tq, heads * dim), rand(rng, batch, tk, heads * dim), rand(rng, batch, tk, heads * dim)


def _right_padding(rng, batch, tk, min_len=1):
    lengths = rng.integers(min_len, tk + 1, batch)
    return (np.arange(tk)[None, :] < lengths[:, None]).astype(np.int64)


# ---- parity with the float64 reference -----------------------------------------------------------------------

@pytest.mark.parametrize("dim", HEAD_DIMS)
@pytest.mark.parametrize("causal", [False, True])
def test_head_dims_match_reference(isa, dim, causal):
    rng = np.random.default_rng(dim)
    q, k, v = _qkv(rng, 2, 70, 70, 2, dim)  # 70 crosses the 64-query and 64-key blocks
    ref.assert_close(ops.multi_head_attention(q, k, v, 2, causal=causal), ref.attention(q, k, v, 2, causal=causal),
                     "attention")


@pytest.mark.parametrize("tq,tk", [(1, 1), (2, 7), (3, 3), (5, 64), (17, 65), (64, 64), (65, 129), (130, 200)])
def test_shapes_around_blocks_with_padding_mask(isa, tq, tk):
    rng = np.random.default_rng(tq * 1000 + tk)
    q, k, v = _qkv(rng, 3, tq, tk, 3, 40)
    mask = _right_padding(rng, 3, tk)
    ref.assert_close(ops.multi_head_attention(q, k, v, 3, mask), ref.attention(q, k, v, 3, mask), "attention")


@pytest.mark.parametrize("mask_dtype", [np.int64, np.int32, np.uint8, bool, np.float32, np.float64])
def test_padding_mask_dtypes(isa, mask_dtype):
    rng = np.random.default_rng(5)
    q, k, v = _qkv(rng, 4, 9, 100, 2, 64)
    mask = (rng.random((4, 100)) < 0.6).astype(mask_dtype)  # scattered holes, not only padding
    ref.assert_close(ops.multi_head_attention(q, k, v, 2, mask), ref.attention(q, k, v, 2, mask), "attention")


@pytest.mark.parametrize("mask_dtype", [np.uint8, bool])
def test_column_slices_of_a_byte_mask_are_read_in_place(isa, mask_dtype):
    # generation slices one [B, max_len] uint8 mask at every layer and step: rows are max_len bytes apart
    rng = np.random.default_rng(8)
    q, k, v = _qkv(rng, 3, 5, 70, 2, 32)
    full = (rng.random((3, 200)) < 0.7).astype(mask_dtype)
    full[:, 0] = 1
    mask = full[:, :70]
    assert not mask.flags.c_contiguous
    got = ops.multi_head_attention(q, k, v, 2, mask)
    np.testing.assert_array_equal(got, ops.multi_head_attention(q, k, v, 2, np.ascontiguousarray(mask)))
    ref.assert_close(got, ref.attention(q, k, v, 2, mask), "attention")


def test_byte_masks_are_still_checked_for_0_and_1():
    rng = np.random.default_rng(9)
    q, k, v = _qkv(rng, 2, 1, 6, 1, 8)
    full = np.ones((2, 10), np.uint8)
    full[1, 4] = 2
    with pytest.raises(ValueError, match=r"attention_mask must contain only 0 and 1 \(1 = attend, 0 = padding\), "
                                         r"got 2 at \[1, 4\]"):
        ops.multi_head_attention(q, k, v, 1, full[:, :6])


@pytest.mark.parametrize("tq", [1, 2, 3, 17, 64, 65, 130])
def test_causal_aligns_last_query_with_last_key(isa, tq):
    rng = np.random.default_rng(tq)
    q, k, v = _qkv(rng, 2, tq, 130, 2, 48)
    mask = np.ones((2, 130), np.int64)
    mask[1, :7] = 0  # left padding
    expected = ref.attention(q, k, v, 2, mask, causal=True)
    ref.assert_close(ops.multi_head_attention(q, k, v, 2, mask, causal=True), expected, "attention")


@pytest.mark.parametrize("tk", [1, 5, 64, 65, 300, 1000, 2100])
@pytest.mark.parametrize("heads", [1, 3])
def test_decode_single_query(isa, two_threads, tk, heads):
    # One query over a long cache: with few heads the key range is split across threads and merged.
    rng = np.random.default_rng(tk + heads)
    q, k, v = _qkv(rng, 1, 1, tk, heads, 64)
    mask = np.ones((1, tk), np.int64)
    mask[0, : tk // 3] = 0
    for m in (None, mask):
        ref.assert_close(ops.multi_head_attention(q, k, v, heads, m, causal=True),
                         ref.attention(q, k, v, heads, m, causal=True), "attention")


def test_one_thread_and_two_threads_agree(isa):
    rng = np.random.default_rng(8)
    q, k, v = _qkv(rng, 1, 2, 3000, 1, 96)
    with num_threads(1):
        serial = ops.multi_head_attention(q, k, v, 1)
    with num_threads(2):
        parallel = ops.multi_head_attention(q, k, v, 1)
    ref.assert_close(parallel, serial, "attention_paths")


def test_fully_masked_rows_give_zeros_not_nan(isa, two_threads):
    rng = np.random.default_rng(9)
    q, k, v = _qkv(rng, 3, 70, 600, 2, 33)
    mask = np.ones((3, 600), np.int64)
    mask[1] = 0           # every key of sequence 1 is padding
    mask[2, 300:] = 0     # and a whole trailing key split of sequence 2
    out = ops.multi_head_attention(q, k, v, 2, mask)
    assert np.isfinite(out).all()
    assert not out[1].any()
    ref.assert_close(out, ref.attention(q, k, v, 2, mask), "attention")
    # Causal with more queries than keys: the first Tq - Tk queries see nothing.
    q2, k2, v2 = _qkv(rng, 1, 10, 4, 1, 64)
    out2 = ops.multi_head_attention(q2, k2, v2, 1, causal=True)
    assert not out2[0, :6].any() and np.isfinite(out2).all()
    ref.assert_close(out2, ref.attention(q2, k2, v2, 1, causal=True), "attention")
    # Single decode query over fully masked keys.
    out3 = ops.multi_head_attention(q2[:, :1], k2, v2, 1, np.zeros((1, 4), bool))
    assert not out3.any()


def test_empty_sizes(isa):
    rng = np.random.default_rng(10)
    q, k, v = _qkv(rng, 2, 3, 0, 2, 32)
    out = ops.multi_head_attention(q, k, v, 2)
    assert out.shape == (2, 3, 64) and not out.any()
    assert ops.multi_head_attention(*_qkv(rng, 0, 3, 4, 2, 32), 2).shape == (0, 3, 64)
    assert ops.multi_head_attention(*_qkv(rng, 2, 0, 4, 2, 32), 2).shape == (2, 0, 64)


def test_scale(isa):
    rng = np.random.default_rng(11)
    q, k, v = _qkv(rng, 2, 20, 30, 2, 64)
    ref.assert_close(ops.multi_head_attention(q, k, v, 2, scale=0.05), ref.attention(q, k, v, 2, scale=0.05),
                     "attention")


def test_large_scores_stay_finite(isa):
    rng = np.random.default_rng(12)
    q, k, v = _qkv(rng, 1, 70, 200, 1, 64)
    q *= 40.0  # scores in the thousands: the running max must be subtracted before exp
    out = ops.multi_head_attention(q, k, v, 1)
    assert np.isfinite(out).all()
    ref.assert_close(out, ref.attention(q, k, v, 1), "attention", scale=10)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), tq=st.integers(1, 80), tk=st.integers(1, 150), heads=st.integers(1, 3),
       dim=st.integers(1, 130), causal=st.booleans(), masked=st.booleans(), seed=st.integers(0, 2**16))
def test_random_shapes(batch, tq, tk, heads, dim, causal, masked, seed):
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, batch, tq, tk, heads, dim)
    mask = (rng.random((batch, tk)) < 0.8).astype(np.int64) if masked else None
    ref.assert_close(ops.multi_head_attention(q, k, v, heads, mask, causal),
                     ref.attention(q, k, v, heads, mask, causal), "attention")


# ---- strided views, out= ---------------------------------------------------------------------------------------

def test_fused_qkv_views_are_read_in_place(isa):
    rng = np.random.default_rng(13)
    batch, t, heads, dim = 2, 70, 3, 64
    hd = heads * dim
    qkv = rand(rng, batch, t, 3 * hd)
    q, k, v = qkv[..., :hd], qkv[..., hd:2 * hd], qkv[..., 2 * hd:]
    assert not q.flags.c_contiguous
    contiguous = [np.ascontiguousarray(x) for x in (q, k, v)]
    np.testing.assert_array_equal(ops.multi_head_attention(q, k, v, heads, causal=True),
                                  ops.multi_head_attention(*contiguous, heads, causal=True))
    ref.assert_close(ops.multi_head_attention(q, k, v, heads), ref.attention(q, k, v, heads), "attention")


def test_strided_last_axis_and_batch_views_are_handled(isa):
    rng = np.random.default_rng(14)
    wide = rand(rng, 4, 10, 128)
    q = wide[::2, :, ::2]  # strided last axis: copied once
    k = wide[1::2, ::-1, 1::2]  # negative row stride: copied once
    v = wide[::2, ::-1, :64]
    ref.assert_close(ops.multi_head_attention(q, k, v, 2), ref.attention(q, k, v, 2), "attention")
    bq = np.broadcast_to(rand(rng, 1, 5, 64), (3, 5, 64))  # zero batch stride
    bk = rand(rng, 3, 6, 64)
    ref.assert_close(ops.multi_head_attention(bq, bk, bk, 1), ref.attention(bq, bk, bk, 1), "attention")


def test_out_argument(isa):
    rng = np.random.default_rng(15)
    q, k, v = _qkv(rng, 2, 6, 9, 2, 32)
    out = np.full((2, 6, 64), np.nan, np.float32)
    result = ops.multi_head_attention(q, k, v, 2, out=out)
    assert result is out
    ref.assert_close(out, ref.attention(q, k, v, 2), "attention")


# ---- varlen ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("cu_dtype", [np.int32, np.int64])
def test_varlen_equals_per_sequence_attention(isa, causal, cu_dtype):
    rng = np.random.default_rng(16)
    lengths = [5, 0, 1, 64, 65, 130, 7]
    heads, dim = 3, 65
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(cu_dtype)
    total = int(cu[-1])
    qkv = rand(rng, total, 3 * heads * dim)
    hd = heads * dim
    q, k, v = qkv[:, :hd], qkv[:, hd:2 * hd], qkv[:, 2 * hd:]
    out = ops.multi_head_attention_varlen(q, k, v, cu, heads, causal=causal)
    assert out.shape == (total, hd)
    for b in range(len(lengths)):
        rows = slice(cu[b], cu[b + 1])
        if lengths[b] == 0:
            continue
        per_seq = ops.multi_head_attention(q[None, rows], k[None, rows], v[None, rows], heads, causal=causal)
        ref.assert_close(out[rows], per_seq[0], "attention_paths")
        ref.assert_close(out[rows], ref.attention(q[None, rows], k[None, rows], v[None, rows], heads,
                                                  causal=causal)[0], "attention")


def test_varlen_equals_padded_batch_with_mask(isa):
    rng = np.random.default_rng(17)
    lengths = np.array([12, 128, 40, 1])
    heads, dim, t = 2, 64, 128
    q, k, v = _qkv(rng, len(lengths), t, t, heads, dim)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    padded = ops.multi_head_attention(q, k, v, heads, mask)
    pack = lambda x: np.concatenate([x[b, :n] for b, n in enumerate(lengths)])
    cu = np.concatenate([[0], np.cumsum(lengths)])
    packed = ops.multi_head_attention_varlen(pack(q), pack(k), pack(v), cu, heads)
    ref.assert_close(packed, pack(padded), "attention_paths")


def test_varlen_out_argument_and_empty_batch(isa):
    rng = np.random.default_rng(18)
    q = rand(rng, 9, 64)
    out = np.empty_like(q)
    assert ops.multi_head_attention_varlen(q, q, q, np.array([0, 4, 9]), 2, out=out) is out
    empty = np.zeros((0, 64), np.float32)
    assert ops.multi_head_attention_varlen(empty, empty, empty, np.array([0]), 2).shape == (0, 64)


# ---- threads -----------------------------------------------------------------------------------------------------

def test_threads_calling_concurrently():
    rng = np.random.default_rng(19)
    jobs = [(_qkv(rng, 2, tq, 90, 2, 64), tq % 2 == 0) for tq in (1, 3, 40, 70, 90, 5)]
    expected = [ops.multi_head_attention(*qkv, 2, causal=c) for qkv, c in jobs]

    def work(qkv, causal):
        for _ in range(5):
            out = ops.multi_head_attention(*qkv, 2, causal=causal)
        return out

    for got, want in zip(run_in_threads(work, jobs), expected):
        np.testing.assert_array_equal(got, want)


# ---- bad inputs --------------------------------------------------------------------------------------------------

def _bad_cases():
    f = np.zeros((2, 3, 8), np.float32)
    k5 = np.zeros((2, 5, 8), np.float32)
    mha = ops.multi_head_attention
    varlen = ops.multi_head_attention_varlen
    p = np.zeros((6, 8), np.float32)
    return [
        (lambda: mha(f.astype(np.float64), f, f, 2), TypeError, "q must have dtype float32, got float64"),
        (lambda: mha([[1.0]], f, f, 2), TypeError, "q must be a numpy.ndarray of dtype float32, got list"),
        (lambda: mha(f[0], f, f, 2), ValueError, r"q must have shape \(batch, q_len, num_heads \* head_dim\), got \(3, 8\)"),
        (lambda: mha(f, f, f, 0), ValueError, "num_heads must be >= 1, got 0"),
        (lambda: mha(f, f, f, 3), ValueError, "8 is not a positive multiple of num_heads=3"),
        (lambda: mha(f, np.zeros((3, 5, 8), np.float32), k5, 2), ValueError,
         r"k must have shape \(2, k_len, 8\) to match q \(2, 3, 8\), got \(3, 5, 8\)"),
        (lambda: mha(f, k5, f, 2), ValueError, r"v must have the shape of k \(2, 5, 8\), got \(2, 3, 8\)"),
        (lambda: mha(f, k5, k5, 2, np.ones((2, 4))), ValueError,
         r"attention_mask must have shape \(2, 5\), got \(2, 4\)"),
        (lambda: mha(f, k5, k5, 2, np.full((2, 5), 2)), ValueError,
         r"attention_mask must contain only 0 and 1 \(1 = attend, 0 = padding\), got 2 at \[0, 0\]"),
        (lambda: mha(f, k5, k5, 2, np.array([[0, 1, 1, 1, 1], [1, 1, -np.inf, 1, 1]])), ValueError,
         r"got -inf at \[1, 2\]"),
        (lambda: mha(f, k5, k5, 2, np.array([["a"] * 5] * 2)), TypeError,
         "attention_mask must have a bool, integer or float dtype"),
        (lambda: mha(f, k5, k5, 2, [[1] * 5] * 2), TypeError, "attention_mask must be a numpy.ndarray of 0/1 values"),
        (lambda: mha(f, k5, k5, 2, scale=float("nan")), ValueError, "scale must be a finite number"),
        (lambda: mha(f, k5, k5, 2, out=np.zeros((2, 3, 9), np.float32)), ValueError,
         r"out must have shape \(2, 3, 8\), got \(2, 3, 9\)"),
        (lambda: mha(f, k5, k5, 2, out=np.zeros((2, 3, 8))), TypeError, "out must have dtype float32"),
        (lambda: mha(f, k5, k5, 2, out=np.zeros((2, 8, 3), np.float32).transpose(0, 2, 1)), ValueError,
         "out must be a writable C-contiguous array"),
        (lambda: mha(f, k5, k5, 2, out=f), ValueError, "out must not share memory with q, k or v"),
        (lambda: varlen(p, p, p, np.array([0, 6]), 3), ValueError, "8 is not a positive multiple of num_heads=3"),
        (lambda: varlen(p, p[:5], p, np.array([0, 6]), 2), ValueError,
         r"k must have the shape of q \(6, 8\), got \(5, 8\)"),
        (lambda: varlen(p, p, p[:, :4], np.array([0, 6]), 2), ValueError, r"v must have the shape of q"),
        (lambda: varlen(p, p, p, np.array([1, 6]), 2), ValueError, "cu_seqlens must start at 0, got 1"),
        (lambda: varlen(p, p, p, np.array([0, 4, 3, 6]), 2), ValueError,
         "cu_seqlens must be non-decreasing, got 4 then 3 at index 2"),
        (lambda: varlen(p, p, p, np.array([0, 4]), 2), ValueError,
         "cu_seqlens must end at the number of packed tokens 6, got 4"),
        (lambda: varlen(p, p, p, np.array([0.0, 6.0]), 2), TypeError, "cu_seqlens must have an integer dtype"),
        (lambda: varlen(p, p, p, np.zeros((0,), np.int64), 2), ValueError,
         r"cu_seqlens must have shape \(batch \+ 1,\) with batch >= 0, got \(0,\)"),
        (lambda: varlen(p, p, p, [0, 6], 2), TypeError, "cu_seqlens must be a numpy.ndarray of integers, got list"),
        (lambda: varlen(p[None], p, p, np.array([0, 6]), 2), ValueError,
         r"q must have shape \(total_tokens, num_heads \* head_dim\)"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_inputs_name_the_problem(case):
    call, exc, message = _bad_cases()[case]
    with pytest.raises(exc, match=message):
        call()


# ---- torch parity (torch runs in a subprocess) -------------------------------------------------------------------

# name, batch, tq, tk, heads, dim, mask, causal, scale. Every query sees at least one key (torch gives NaN else).
TORCH_CASES = [
    ("encoder_padding", 3, 77, 77, 4, 64, "right", False, None),
    ("causal_prefill", 2, 130, 130, 2, 80, None, True, None),
    ("causal_fewer_queries", 2, 5, 140, 3, 96, "left", True, None),
    ("decode", 2, 1, 600, 2, 128, "left", True, None),
    ("decode_key_splits", 1, 1, 1100, 1, 65, None, True, None),
    ("odd_dims_scale", 2, 33, 47, 3, 33, "right", False, 0.3),
]


@pytest.fixture(scope="session")
def torch_outputs(tmp_path_factory):
    rng = np.random.default_rng(2024)
    inputs, arrays, cases = {}, {}, []
    for name, batch, tq, tk, heads, dim, mask_kind, causal, scale in TORCH_CASES:
        q, k, v = _qkv(rng, batch, tq, tk, heads, dim)
        mask = None
        if mask_kind:
            lengths = np.maximum(rng.integers(tk // 2, tk + 1, batch), 1)
            lengths[0] = tk
            pos = np.arange(tk)[None, :]
            mask = (pos < lengths[:, None]) if mask_kind == "right" else (pos >= tk - lengths[:, None])
            mask = mask.astype(np.int64)
            arrays[f"{name}.mask"] = mask
        arrays.update({f"{name}.{x}": a for x, a in zip("qkv", (q, k, v))})
        inputs[name] = (q, k, v, heads, mask, causal, scale)
        cases.append({"name": name, "num_heads": heads, "causal": causal, "scale": scale})
    outputs = make_reference(tmp_path_factory.mktemp("attention_torch"), arrays, cases)
    return {name: (inputs[name], outputs[name]) for name in inputs}


@pytest.mark.parametrize("name", [c[0] for c in TORCH_CASES])
def test_matches_torch_sdpa(isa, two_threads, torch_outputs, name):
    (q, k, v, heads, mask, causal, scale), expected = torch_outputs[name]
    out = ops.multi_head_attention(q, k, v, heads, mask, causal, scale)
    ref.assert_close(out, expected, "attention_vs_torch")
    ref.assert_close(out, ref.attention(q, k, v, heads, mask, causal, scale), "attention")


# ---- relative position bias (MPNet) -------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("lengths", [[1, 2, 3], [63, 70, 5], [130, 64, 65, 1]])
def test_varlen_relative_bias_matches_reference(isa, lengths, causal):
    """Rows path (1-2 queries) and blocked path (64-query / 64-key tiles and their edges): each sequence equals
    the float64 reference with the bias added by relative position, indexed per sequence."""
    rng = np.random.default_rng(sum(lengths))
    heads, dim, longest = 3, 33, 140
    cu = np.concatenate([[0], np.cumsum(lengths)])
    q, k, v = (rand(rng, int(cu[-1]), heads * dim) for _ in range(3))
    bias = rand(rng, heads, 2 * longest - 1, scale=2.0)
    out = ops.multi_head_attention_varlen(q, k, v, cu, heads, causal=causal, relative_bias=bias)
    for b, n in enumerate(lengths):
        rows = slice(cu[b], cu[b + 1])
        want = ref.attention(q[None, rows], k[None, rows], v[None, rows], heads, causal=causal, relative_bias=bias)
        ref.assert_close(out[rows], want[0], "attention", err_msg=f"sequence {b} of length {n}")


def test_varlen_relative_bias_zero_equals_no_bias(isa):
    rng = np.random.default_rng(3)
    q, k, v = (rand(rng, 90, 2 * 32) for _ in range(3))
    cu = np.array([0, 20, 90])
    plain = ops.multi_head_attention_varlen(q, k, v, cu, 2)
    np.testing.assert_array_equal(
        ops.multi_head_attention_varlen(q, k, v, cu, 2, relative_bias=np.zeros((2, 139), np.float32)), plain)


@pytest.mark.parametrize("shape, dtype, error, message", [
    ((2, 20), np.float32, ValueError, r"relative_bias must have shape \(num_heads=2, 2 \* L - 1\) with L >= the "
                                      r"longest sequence \(70\), got \(2, 20\)"),
    ((3, 139), np.float32, ValueError, r"relative_bias must have shape \(num_heads=2"),
    ((2, 138), np.float32, ValueError, r"relative_bias must have shape"),
    ((2, 139), np.float64, TypeError, "relative_bias"),
])
def test_varlen_relative_bias_errors(shape, dtype, error, message):
    q = np.zeros((90, 64), np.float32)
    with pytest.raises(error, match=message):
        ops.multi_head_attention_varlen(q, q, q, np.array([0, 20, 90]), 2, relative_bias=np.zeros(shape, dtype))
