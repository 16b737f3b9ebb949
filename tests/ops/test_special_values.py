"""NaN, +-inf, huge and tiny values through every op, on every ISA, against float64 references written for these
cases (element by element, no BLAS: a BLAS may skip zeros or reorder, and special values must follow IEEE).

The rule (torch's): NaN exactly where the float64 reference has NaN, +-inf where it has +-inf, close elsewhere.
Checking each ISA against the same reference also makes the ISAs agree with each other. Our two documented
departures from a naive reference: a softmax / attention row that sees only -inf (a fully masked row) gives
zeros, and keys hidden by the mask or causality are never read (so NaN stored there cannot leak in as 0 * NaN).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import reference as ref
from cpuformer import _core, ops
from cpuformer.nn import LSTM
from helpers import rand

NAN, INF = np.float32("nan"), np.float32("inf")
FMAX = np.finfo(np.float32).max
SPECIAL = np.array([NAN, INF, -INF, 0.0, -0.0, 1e30, -1e30, 3e38, -3e38, 1e-30, -1e-30, 1e-45, -1e-45, 1.0, -2.5],
                   np.float32)


def assert_special_close(actual, expected, what: str, scale: float = 1.0, err_msg: str = ""):
    """Same NaN and +-inf positions as the reference; the finite rest within TOLERANCE[what]."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    for name, test in (("NaN", np.isnan), ("+inf", lambda a: a == np.inf), ("-inf", lambda a: a == -np.inf)):
        got, want = test(actual), test(expected)
        bad = np.argwhere(got != want)
        assert not len(bad), (f"{err_msg}: {name} at {len(bad)} positions differs from the reference, first "
                              f"{tuple(bad[0])}: got {actual[tuple(bad[0])]}, expected {expected[tuple(bad[0])]}")
    finite = np.isfinite(expected)
    ref.assert_close(actual[finite], expected[finite], what, scale, err_msg=err_msg)


def matmul64(a, b_t):
    """a [..., K] x b_t [N, K]^T in float64 by explicit products and sums (IEEE for every special value)."""
    a, b_t = np.asarray(a, np.float64), np.asarray(b_t, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return (a[..., None, :] * b_t).sum(axis=-1)


def softmax64(x):
    """float64 softmax of the last axis; a row of only -inf (fully masked) gives zeros instead of NaN."""
    x = np.asarray(x, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        m = x.max(axis=-1, keepdims=True)
        e = np.exp(x - m)
        out = e / e.sum(axis=-1, keepdims=True)
    masked = np.all(x == -np.inf, axis=-1)
    out[masked] = 0.0
    return out


def sigmoid64(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def gelu64(x, approximate):
    with np.errstate(invalid="ignore", over="ignore"):
        return ref.gelu(x, approximate)


def attention64(q, k, v, num_heads, attention_mask=None, causal=False):
    """Per query: softmax(q k^T / sqrt(D)) v over the keys it can see (mask and causal), nothing else read.
    No visible key, or only -inf scores: zeros. q [B, Tq, H*D], k/v [B, Tk, H*D]."""
    q64, k64, v64 = (np.asarray(a, np.float64) for a in (q, k, v))
    (batch, tq, hidden), tk = q.shape, k.shape[1]
    d = hidden // num_heads
    out = np.zeros((batch, tq, hidden))
    with np.errstate(invalid="ignore", over="ignore"):
        for b in range(batch):
            for h in range(num_heads):
                cols = slice(h * d, (h + 1) * d)
                for i in range(tq):
                    keys = [j for j in range(tk) if (attention_mask is None or attention_mask[b, j])
                            and (not causal or j <= i + tk - tq)]
                    if not keys:
                        continue
                    scores = (q64[b, i, cols] * k64[b, keys, cols]).sum(axis=-1) / math.sqrt(d)
                    p = softmax64(scores)
                    out[b, i, cols] = (p[:, None] * v64[b, keys, cols]).sum(axis=0)
    return out


# SPECIAL without the values whose float32 sums overflow where float64's do not (not a special-value question).
NO_OVERFLOW = SPECIAL[np.abs(np.nan_to_num(SPECIAL, posinf=0, neginf=0)) < 1e31]


def special_matrix(rng, rows, cols):
    """rows x cols of standard normal values with NO_OVERFLOW's values spread over it."""
    x = rand(rng, rows, cols)
    flat = x.reshape(-1)
    positions = rng.choice(flat.size, size=min(flat.size, 2 * len(NO_OVERFLOW)), replace=False)
    flat[positions] = np.resize(NO_OVERFLOW, len(positions))
    return x


# ---- the audit's reproductions ---------------------------------------------------------------------------------

def test_audit_reproductions(isa):
    # softmax([1, nan, 2]) was finite, softmax([1, inf, 2]) was [1/3, 1/3, 1/3]: both are NaN rows (torch too).
    for row in ([1, NAN, 2], [1, INF, 2]):
        x = np.array([row], np.float32)
        assert_special_close(ops.softmax(x), softmax64(x), "softmax")
        assert np.isnan(ops.softmax(x)).all()
    # relu(nan) was 0.
    assert np.isnan(ops.activation(np.array([NAN], np.float32), "relu")).all()
    # layer_norm of a row scaled by 1e30 was all zeros.
    row = ((np.arange(8, dtype=np.float32) - 3.5) * np.float32(1e30))[None]
    ones, zeros = np.ones(8, np.float32), np.zeros(8, np.float32)
    y = ops.layer_norm(row, ones, zeros)
    ref.assert_close(y, ref.layer_norm(row, ones, zeros), "layer_norm", scale=4)
    assert np.abs(y).max() > 1.5
    # attention with a NaN query / key gave no NaN; +inf in a key gave ISA-dependent finite values.
    rng = np.random.default_rng(0)
    for tq in (1, 3):  # the decode (rows) path and the blocked path
        q, k, v = rand(rng, 1, tq, 8), rand(rng, 1, 5, 8), rand(rng, 1, 5, 8)
        for target, value in ((q, NAN), (k, NAN), (k, INF), (k, -INF)):
            qq, kk = q.copy(), k.copy()
            (qq if target is q else kk)[0, 0, 2] = value
            out = ops.multi_head_attention(qq, kk, v, 2)
            assert_special_close(out, attention64(qq, kk, v, 2), "attention", err_msg=f"tq={tq} value={value}")
        qq = q.copy()
        qq[0, 0, 2] = NAN
        assert np.isnan(ops.multi_head_attention(qq, k, v, 2)[0, 0, :4]).all()
    # The LSTM turned a NaN input into finite outputs.
    x = rand(rng, 1, 4)
    x[0, 1] = NAN
    h, c = np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32)
    h1, c1 = ops.lstm_cell(x, h, c, rand(rng, 12, 4), rand(rng, 12, 3))
    assert np.isnan(h1).all() and np.isnan(c1).all()


# ---- elementwise -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 7, 16, 33])
def test_activations(isa, n):
    x = np.resize(SPECIAL, (3, n * len(SPECIAL)))
    expected = {"none": x.astype(np.float64), "relu": ref.relu(x), "gelu": gelu64(x, "none"),
                "gelu_tanh": gelu64(x, "tanh")}
    for name, want in expected.items():
        assert_special_close(ops.activation(x, name), want, "gelu", err_msg=name)
    assert_special_close(ops.gelu(x), expected["gelu"], "gelu")
    assert_special_close(ops.gelu(x, approximate="tanh"), expected["gelu_tanh"], "gelu")
    # torch: gelu(-inf) and gelu_tanh(-inf) are NaN (x * 0), gelu(+inf) = +inf.
    y = ops.gelu(np.array([-INF, INF], np.float32))
    assert np.isnan(y[0]) and y[1] == INF


@pytest.mark.parametrize("cols", [1, 3, 16, 17, 100])
def test_softmax(isa, cols):
    rng = np.random.default_rng(cols)
    rows = [rand(rng, cols, scale=3) for _ in range(4)]
    for value in SPECIAL:
        for pos in {0, cols // 2, cols - 1}:
            r = rand(rng, cols, scale=3)
            r[pos] = value
            rows.append(r)
    rows.append(np.full(cols, -INF, np.float32))  # fully masked: zeros
    masked_nan = np.full(cols, -INF, np.float32)
    masked_nan[-1] = NAN
    rows.append(masked_nan)  # masked but holding a NaN: NaN
    rows.append(np.linspace(-1e30, 1e30, cols, dtype=np.float32))  # huge: one-hot
    rows.append(np.linspace(-1e-30, 1e-30, cols, dtype=np.float32))  # tiny: uniform
    rows.append(np.full(cols, FMAX, np.float32))  # uniform, no overflow
    x = np.stack(rows)
    assert_special_close(ops.softmax(x), softmax64(x), "softmax")


@pytest.mark.parametrize("cols", [1, 5, 16, 77, 768])
@pytest.mark.parametrize("eps", [1e-5, 0.0])
def test_layer_norm(isa, cols, eps):
    rng = np.random.default_rng(cols)
    base = rand(rng, cols) + 0.5 * np.arange(cols, dtype=np.float32) / cols  # never constant
    rows = [base * np.float32(s) for s in (1.0, 1e30, -1e35, 1e-30, 1e-40)]
    rows += [base / np.abs(base).max() * np.float32(FMAX / 4)]  # entries up to FLT_MAX / 4
    for value in (NAN, INF, -INF):
        r = base.copy()
        r[cols // 2] = value
        rows.append(r)
    if cols > 1:
        both = base.copy()
        both[0], both[-1] = INF, -INF
        rows.append(both)
        huge_and_small = base.copy()
        huge_and_small[0] = 1e30
        rows.append(huge_and_small)
    x = np.stack(rows)
    w, b = rand(rng, cols), rand(rng, cols)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        expected = ref.layer_norm(x, w, b, eps)
    # (cols = 1, eps = 0: every row has variance 0, and 0 / 0 is NaN in both.)
    assert_special_close(ops.layer_norm(x, w, b, eps=eps), expected, "layer_norm", scale=4)


def test_layer_norm_weights_with_special_values(isa):
    rng = np.random.default_rng(3)
    x = rand(rng, 4, 40)
    w, b = rand(rng, 40), rand(rng, 40)
    w[3], b[7], w[9] = NAN, INF, INF
    assert_special_close(ops.layer_norm(x, w, b), ref.layer_norm(x, w, b), "layer_norm", scale=4)


# ---- linear and the fused epilogue ------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["none", "relu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("m,n,k", [(1, 5, 3), (7, 33, 20), (30, 70, 40)])
def test_linear_with_activation(isa, activation, m, n, k):
    rng = np.random.default_rng(m * n + k)
    x = special_matrix(rng, m, k)
    x[0] = rand(rng, k)  # one clean row, one row holding a single NaN
    if m > 1:
        x[1] = rand(rng, k)
        x[1, k // 2] = NAN
    w, bias = rand(rng, n, k), rand(rng, n)
    w[n // 2, 0] = 0.0  # inf * 0 = NaN in the sum, as in the reference
    residual = rand(rng, m, n)
    residual[-1, -1] = -INF
    lin = ops.PackedLinear(w, bias, activation=activation)
    with np.errstate(invalid="ignore", over="ignore"):
        pre = matmul64(x, w) + bias
        expected = ref.ACTIVATIONS[activation](pre)
        with_res = expected + residual
    assert_special_close(lin(x), expected, "linear", scale=math.sqrt(k), err_msg="no residual")
    assert_special_close(lin(x, residual=residual), with_res, "linear", scale=math.sqrt(k), err_msg="residual")
    assert np.isfinite(lin(x)[0]).all()
    if m > 1:
        assert np.isnan(lin(x)[1]).all()


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
@pytest.mark.parametrize("m", [1, 40])  # decode tiles, and enough row tiles that the panels are widened once
def test_linear_weight_dtypes(isa, dtype, m):
    rng = np.random.default_rng(m)
    k, n = 70, 33
    x = special_matrix(rng, m, k)
    w, bias = rand(rng, n, k), rand(rng, n)
    stored = ref.round_bf16(w) if dtype == "bf16" else ref.dequantize_int8(*ref.quantize_int8(w))
    seen = x
    if dtype == "bf16" and ref.bf16_computes(m, k):  # avx512_bf16: x is rounded to bf16 too (subnormals to 0)
        seen, stored = ref.round_bf16_compute(x), ref.flush_denormals(stored)
    lin = ops.PackedLinear(w, bias, activation="gelu", dtype=dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = gelu64(matmul64(seen, stored) + bias, "none")
    assert_special_close(lin(x), expected, "linear", scale=math.sqrt(k))


def test_linear_special_weights_and_bias(isa):
    rng = np.random.default_rng(5)
    x = rand(rng, 9, 21)
    w, bias = rand(rng, 40, 21), rand(rng, 40)
    w[3, 4], w[5, 0], bias[10], bias[39] = NAN, INF, -INF, NAN
    for activation in ("none", "relu", "gelu"):
        with np.errstate(invalid="ignore", over="ignore"):
            expected = ref.ACTIVATIONS[activation](matmul64(x, w) + bias)
        assert_special_close(ops.linear(x, w, bias, activation=activation), expected, "linear", scale=math.sqrt(21))


def test_linear_huge_and_tiny(isa):
    rng = np.random.default_rng(6)
    x = rand(rng, 5, 16)
    w = rand(rng, 24, 16)
    for scale in (1e17, 1e-20):
        xs = x * np.float32(scale)
        for activation in ("relu", "gelu", "gelu_tanh"):
            y = ops.linear(xs, w, activation=activation)
            expected = gelu64(matmul64(xs, w), "tanh" if activation == "gelu_tanh" else "none") \
                if activation != "relu" else ref.relu(matmul64(xs, w))
            np.testing.assert_allclose(y, expected, rtol=1e-5, atol=4e-5 * scale * 16)


# ---- attention -------------------------------------------------------------------------------------------------

def poisoned(rng, batch, t, hidden, where):
    """Random [batch, t, hidden] with `where` = [(b, row, col, value)] written in."""
    x = rand(rng, batch, t, hidden)
    for b, row, col, value in where:
        x[b, row, col] = value
    return x


ATTENTION_SHAPES = [(1, 5), (2, 9), (3, 70), (70, 70), (5, 140)]  # (Tq, Tk): rows path, blocked, key blocks


@pytest.mark.parametrize("tq,tk", ATTENTION_SHAPES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_attention(isa, tq, tk, causal, masked):
    rng = np.random.default_rng(tq * 1000 + tk)
    heads, d = 2, 16
    hidden = heads * d
    mask = None
    if masked:
        mask = np.ones((3, tk), np.int64)
        mask[1, : tk // 3] = 0  # left padding
        mask[2] = 0  # fully masked: zeros, whatever its keys hold
    cases = {
        "nan_q": dict(q=[(0, tq - 1, 3, NAN)]),
        "inf_q": dict(q=[(0, 0, 20, INF)]),
        "nan_k_first": dict(k=[(0, 0, 1, NAN), (2, 0, 1, NAN)]),
        "inf_k": dict(k=[(0, tk // 2, 2, INF), (1, tk - 1, 17, -INF)]),
        "nan_v": dict(v=[(0, tk - 1, 5, NAN), (1, 0, 30, INF), (2, 1, 1, NAN)]),
        "huge_v": dict(v=[(0, 1 % tk, c, 1e30) for c in range(hidden)]),
    }
    for name, where in cases.items():
        q = poisoned(rng, 3, tq, hidden, where.get("q", []))
        k = poisoned(rng, 3, tk, hidden, where.get("k", []))
        v = poisoned(rng, 3, tk, hidden, where.get("v", []))
        out = ops.multi_head_attention(q, k, v, heads, attention_mask=mask, causal=causal)
        expected = attention64(q, k, v, heads, mask, causal)
        assert_special_close(out, expected, "attention", err_msg=name)
        if masked:
            assert (out[2] == 0).all(), name


def test_attention_huge_and_tiny_scores(isa):
    rng = np.random.default_rng(8)
    heads, d, tk = 1, 16, 40
    for tq in (1, 2, 50):
        q = np.zeros((1, tq, d), np.float32)
        q[..., 0] = 1e18
        k = np.zeros((1, tk, d), np.float32)
        k[0, :, 0] = rng.permutation(tk).astype(np.float32) * 1e17  # one key wins by 1e35: one-hot
        v = rand(rng, 1, tk, d)
        assert_special_close(ops.multi_head_attention(q, k, v, heads), attention64(q, k, v, heads), "attention")
        k[0, :, 0] = -1e17 * (1 + rng.permutation(tk).astype(np.float32))  # scores all ~ -1e35: still a softmax
        assert_special_close(ops.multi_head_attention(q, k, v, heads), attention64(q, k, v, heads), "attention")
        tiny_q = rand(rng, 1, tq, d) * np.float32(1e-25)
        assert_special_close(ops.multi_head_attention(tiny_q, k * 1e-30, v, heads),
                             attention64(tiny_q, k * 1e-30, v, heads), "attention")


@pytest.mark.parametrize("tq,tk", [(1, 9), (3, 9), (70, 130)])
def test_attention_hidden_keys_are_never_read(isa, tq, tk):
    # NaN in the key and value rows a query cannot see (padding, the future) stays out of its output.
    rng = np.random.default_rng(tq + tk)
    heads, d = 2, 8
    q, k, v = (rand(rng, 2, t, heads * d) for t in (tq, tk, tk))
    mask = np.ones((2, tk), np.int64)
    mask[0, :3] = 0
    mask[1, tk // 2] = 0  # a hole inside a key block
    k[0, :3], v[0, :3], k[1, tk // 2], v[1, tk // 2] = NAN, NAN, NAN, INF
    out = ops.multi_head_attention(q, k, v, heads, attention_mask=mask)
    assert np.isfinite(out).all()
    assert_special_close(out, attention64(q, k, v, heads, mask), "attention")
    # causal: the last key is seen by the last query only
    k2, v2 = rand(rng, 1, tk, heads * d), rand(rng, 1, tk, heads * d)
    v2[0, -1] = NAN
    out = ops.multi_head_attention(q[:1], k2, v2, heads, causal=True)
    assert np.isfinite(out[0, :-1]).all() and np.isnan(out[0, -1]).all()
    assert_special_close(out, attention64(q[:1], k2, v2, heads, None, True), "attention")


def test_attention_key_splits_and_kv_cache(isa, two_threads):
    # Decode against 2000 keys on 2 threads splits the keys; the merge must keep NaN and the fully masked zeros.
    rng = np.random.default_rng(11)
    heads, d, tk = 1, 64, 2000
    cache = ops.KVCache(1, 3, heads, d, max_len=tk)
    k, v = rand(rng, 3, tk, d), rand(rng, 3, tk, d)
    k[0, 1900, 4] = NAN  # seen by row 0's query: NaN
    v[1, 10, 7] = INF  # row 1: the column holding it
    k[2, :], v[2, :] = NAN, NAN  # row 2: fully masked, zeros
    mask = np.ones((3, tk), np.int64)
    mask[2] = 0
    cache.append(0, k, v)
    q = rand(rng, 3, 1, d)
    for out in (cache.attend(0, q, mask), ops.multi_head_attention(q, k, v, heads, attention_mask=mask)):
        assert_special_close(out, attention64(q, k, v, heads, mask), "attention")
        assert np.isnan(out[0]).all() and (out[2] == 0).all()
        assert np.isinf(out[1, 0, 7]) and np.isfinite(np.delete(out[1, 0], 7)).all()


def test_attention_varlen(isa):
    rng = np.random.default_rng(12)
    heads, d, lengths = 2, 8, [3, 1, 70]
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    q, k, v = (rand(rng, cu[-1], heads * d) for _ in range(3))
    q[0, 2], k[cu[2] + 5, 9], v[cu[1], 0] = NAN, INF, NAN
    out = ops.multi_head_attention_varlen(q, k, v, cu, heads, causal=True)
    for b in range(len(lengths)):
        rows = slice(cu[b], cu[b + 1])
        expected = attention64(q[None, rows], k[None, rows], v[None, rows], heads, causal=True)[0]
        assert_special_close(out[rows], expected, "attention", err_msg=f"sequence {b}")


# ---- LSTM ------------------------------------------------------------------------------------------------------

def lstm64(x, w_ih, w_hh, b_ih, b_hh, h, c):
    """One-layer torch.nn.LSTM over x [T, B, I] in float64, element by element."""
    outs = []
    with np.errstate(invalid="ignore", over="ignore"):
        for t in range(x.shape[0]):
            gates = matmul64(x[t], w_ih) + b_ih + matmul64(h, w_hh) + b_hh
            i, f, g, o = np.split(gates, 4, axis=-1)
            c = sigmoid64(f) * c + sigmoid64(i) * np.tanh(g)
            h = sigmoid64(o) * np.tanh(c)
            outs.append(h)
    return np.stack(outs), h, c


def test_lstm_cell(isa):
    rng = np.random.default_rng(13)
    batch, inp, hid = 6, 5, 20
    x = rand(rng, batch, inp, scale=2)
    h, c = rand(rng, batch, hid), rand(rng, batch, hid)
    x[0, 1], x[1, 0], x[2, 3], h[3, 4], c[4, 5] = NAN, INF, -1e30, NAN, -INF
    w_ih, w_hh, b_ih, b_hh = rand(rng, 4 * hid, inp), rand(rng, 4 * hid, hid), rand(rng, 4 * hid), rand(rng, 4 * hid)
    h1, c1 = ops.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    _, h_ref, c_ref = lstm64(x[None], w_ih, w_hh, b_ih, b_hh, h.astype(np.float64), c.astype(np.float64))
    assert_special_close(h1, h_ref, "lstm", err_msg="h")
    assert_special_close(c1, c_ref, "lstm", err_msg="c")
    assert np.isnan(h1[0]).all() and np.isfinite(h1[5]).all()


def test_lstm_layer(isa):
    rng = np.random.default_rng(14)
    steps, batch, inp, hid = 7, 4, 6, 24
    lstm = LSTM(inp, hid)
    w_ih, w_hh = rand(rng, 4 * hid, inp, scale=0.5), rand(rng, 4 * hid, hid, scale=0.5)
    b_ih, b_hh = rand(rng, 4 * hid), rand(rng, 4 * hid)
    lstm.load_state_dict({"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh})
    x = rand(rng, steps, batch, inp)
    x[3, 0, 2] = NAN  # sequence 0: NaN from step 3 on
    x[1, 1, 0] = INF  # sequence 1: saturated gates, still finite
    x[2, 2, 5] = 1e30
    out, (h_n, c_n) = lstm(x)
    zeros = np.zeros((batch, hid))
    out_ref, h_ref, c_ref = lstm64(x, w_ih, w_hh, b_ih, b_hh, zeros, zeros)
    assert_special_close(out, out_ref, "lstm", err_msg="out")
    assert_special_close(h_n[0], h_ref, "lstm", err_msg="h_n")
    assert_special_close(c_n[0], c_ref, "lstm", err_msg="c_n")
    assert np.isfinite(out[:3, 0]).all() and np.isnan(out[3:, 0]).all()


# ---- embedding bag ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag(isa, mode):
    rng = np.random.default_rng(15)
    table = rand(rng, 10, 19)
    table[2, 3], table[4, 0], table[5, 18], table[6] = NAN, INF, -INF, 1e38
    ids = np.array([0, 1, 2, 3, 4, 4, 5, 6, 6, 7, 8, 9], np.int64)
    offsets = np.array([0, 2, 4, 6, 7, 9, 12], np.int64)  # the last bag is empty
    with np.errstate(invalid="ignore", over="ignore"):
        expected = ref.embedding_bag(ids, offsets, table, mode)
    assert_special_close(ops.embedding_bag(ids, offsets, table, mode), expected, "embedding_bag")
