"""Plain numpy references for every op, written for clarity rather than speed, computed in float64."""
from __future__ import annotations

import math

import numpy as np

# The one tolerance table: (rtol, atol) for np.testing.assert_allclose, named by what is compared. float32
# results are compared against the float64 references below, or against another float32 path / torch.
TOLERANCE = {
    # ours vs the float64 reference of the op. assert_close's `scale` widens atol where the error grows with a
    # reduction (sqrt(K) for K-term dot products, 4 for layer_norm's mean and variance).
    "linear": (1e-5, 1e-5),
    # PackedLinear(dtype="int8") vs linear() in float64 on the SAME quantized weights (q * scale): the same fp32
    # accumulation as "linear" (q are exact small integers) plus one rounding for the column scale.
    "linear_int8": (1e-5, 1e-5),
    # int8 vs float32 weights on standard-normal data, compared as y / max|y_fp32| (so atol is relative to the
    # largest output): the quantization error itself, measured 0.8-1.0% (relative RMS ~0.8%) at K = 768 and 3072.
    "linear_int8_vs_fp32": (0.0, 0.02),
    # PackedLinear(dtype="bf16") vs linear() in float64 on the same bf16-rounded weights (exact in fp32).
    "linear_bf16": (1e-5, 1e-5),
    # bf16 vs float32 weights, as linear_int8_vs_fp32: each weight is off by <= 2^-9 relative (measured ~0.1%).
    "linear_bf16_vs_fp32": (0.0, 0.004),
    "gelu": (1e-5, 1e-6),  # every ops.activation (none, gelu, gelu_tanh, relu)
    "relu": (0.0, 0.0),
    "layer_norm": (1e-5, 1e-5),
    "softmax": (1e-5, 1e-7),
    "softmax_row_sum": (1e-5, 0.0),  # each row of ops.softmax sums to 1
    "embedding": (0.0, 0.0),
    "embedding_bag": (1e-6, 1e-6),
    "attention": (1e-5, 1e-5),
    "lstm": (1e-5, 1e-5),
    "recurrent": (1e-5, 1e-5),  # GRU / RNN layers and cells (same engine as the LSTM)
    "top_k_scores": (1e-5, 1e-5),  # scores top_k returns vs numpy's float32 dot products of the rows it chose
    # ours vs ours: the same math along another path (thread split of the keys, varlen vs padded, one
    # sequence alone vs in a batch, KV-cache decode vs one call, lstm_cell vs a one-step nn.LSTM).
    "attention_paths": (1e-6, 1e-6),
    "lstm_paths": (1e-6, 1e-6),
    "recurrent_paths": (1e-6, 1e-6),
    "cli_vs_in_process": (0.0, 1e-6),  # `cpuformer embed` in a subprocess vs SentenceEncoder here
    # ours vs torch / gensim (float32 on both sides; torch runs in its own process: torch_reference.py).
    "attention_vs_torch": (1e-4, 2e-5),
    "lstm_vs_torch": (0.0, 1e-5),
    "recurrent_vs_torch": (0.0, 1e-5),  # GRU / RNN / cells, max abs diff
    "cosine_vs_gensim": (0.0, 1e-5),  # KeyedVectors scores; neighbours closer than this count as tied
    "unit_norm": (0.0, 1e-6),  # KeyedVectors' normalised rows
    # Models vs their references (transformers / sentence-transformers in their own process).
    "model_vs_transformers": (0.0, 1e-4),  # hidden states, logits (CONVENTIONS: model outputs 1e-4 absolute)
    "sentence_embedding_vs_sentence_transformers": (0.0, 1e-5),
    # Models vs themselves along another path: a sequence alone vs in a batch, batch size, order, prefill vs the
    # packed forward; probabilities (softmax scores) along two paths; pooling vs a plain numpy loop.
    "model_paths": (0.0, 1e-5),
    "model_paths_unit": (0.0, 1e-6),  # values of magnitude <= 1: probabilities, unit-norm embeddings
    "pooling": (1e-6, 1e-6),
    # Sampling frequencies over 20000 draws vs the target distribution (binomial sd <= 0.0036: > 4 sd).
    "sampling_frequency": (0.0, 0.015),
}


def assert_close(actual, expected, what: str, scale: float = 1.0, err_msg: str = ""):
    """assert_allclose with TOLERANCE[what]; `scale` widens atol for long reductions. NaN never matches."""
    rtol, atol = TOLERANCE[what]
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol,
                               atol=atol * scale, equal_nan=False, err_msg=err_msg)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x, approximate: str = "none"):
    x = np.asarray(x, np.float64)
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def relu(x):
    return np.maximum(np.asarray(x, np.float64), 0.0)


ACTIVATIONS = {"none": lambda x: np.asarray(x, np.float64), "gelu": gelu,
               "gelu_tanh": lambda x: gelu(x, "tanh"), "relu": relu}


def linear(x, weight, bias=None, activation="none", residual=None):
    """y = act(x @ weight.T + bias) + residual, weight [out, in]."""
    y = np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        y = y + bias
    y = ACTIVATIONS[activation](y)
    if residual is not None:
        y = y + residual
    return y


INT8_GROUP = 64  # PackedLinear's default group_size


def quantize_int8(weight, group=INT8_GROUP):
    """Weight-only symmetric int8 per output feature (row of weight [out, in]) and group of `group` inputs (0: the
    whole row), computed in float32 as the packing does: scale[n, g] = max|W[n, group g]| / 127 (1 where that is
    0), q = round-half-even(W / scale) clipped to 127. Returns q [out, in] and scale [out, groups]."""
    w = np.asarray(weight, np.float32)
    n, k = w.shape
    group = min(group, k) if group and k else max(k, 1)
    groups = -(-k // group)
    padded = np.zeros((n, groups * group), np.float32)
    padded[:, :k] = w
    scale = (np.abs(padded.reshape(n, groups, group)).max(axis=2, initial=0.0) / np.float32(127)).astype(np.float32)
    scale[scale == 0] = 1
    per_weight = np.repeat(scale, group, axis=1)[:, :k]
    q = np.clip(np.rint(w / per_weight), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8(q, scale, group=INT8_GROUP):
    """q * scale in float64: scale [out, groups], column j of q uses scale[:, j // group] (group 0: all of K)."""
    k = q.shape[1]
    group = min(group, k) if group and k else max(k, 1)
    return q.astype(np.float64) * np.repeat(scale.astype(np.float64), group, axis=1)[:, :k]


# Without VNNI, int8 weights run int8 compute (x quantized too) from this many rows of x on; the VNNI levels do from
# one row on (KernelTable::u8s8_min_rows, asked from cpuformer by u8s8_min_rows()).
U8S8_MIN_ROWS = 16


def u8s8_min_rows():
    from cpuformer import _core

    return _core._config()["int8_compute_min_rows"]


def quantize_u8_rows(x, group=INT8_GROUP):
    """int8 compute's activation quantization, per row and group of `group` inputs (0: the whole row), in float32
    as the kernels do it: lo = min(x, 0), hi = max(x, 0), scale = (hi - lo) / 255 (1 where that is 0),
    zero = rint(-lo / scale) (as -lo * (1 / scale)), q = clip(rint(x * (1 / scale)) + zero, 0, 255).
    Returns q uint8 [m, k], scale and zero float32 [m, groups]."""
    x = np.asarray(x, np.float32)
    m, k = x.shape
    group = min(group, k) if group and k else max(k, 1)
    groups = -(-k // group)
    padded = np.zeros((m, groups * group), np.float32)
    padded[:, :k] = x
    g = padded.reshape(m, groups, group)
    lo, hi = np.minimum(g.min(axis=2), 0), np.maximum(g.max(axis=2), 0)
    scale = ((hi - lo) / np.float32(255)).astype(np.float32)
    scale[~(scale > 0)] = 1
    inv = (np.float32(1) / scale).astype(np.float32)
    zero = np.clip(np.rint(-lo * inv), 0, 255).astype(np.float32)
    q = np.clip(np.rint(g * inv[:, :, None]) + zero[:, :, None], 0, 255).reshape(m, -1)[:, :k].astype(np.uint8)
    return q, scale, zero


def dequantize_u8_rows(q, scale, zero, group=INT8_GROUP):
    """(q - zero) * scale in float64, per row and group."""
    k = q.shape[1]
    group = min(group, k) if group and k else max(k, 1)
    rep = lambda v: np.repeat(v.astype(np.float64), group, axis=1)[:, :k]  # noqa: E731
    return (q.astype(np.float64) - rep(zero)) * rep(scale)


def int8_computes(rows, k, group=INT8_GROUP):
    """Whether PackedLinear(dtype="int8") runs int8 compute on `rows` rows (else weight-only): int8 compute is on
    for the active kernels (a setting, asked from cpuformer), enough rows, and K groups that start on multiples of 4
    (or one group)."""
    from cpuformer import _core

    group = min(group, k) if group and k else max(k, 1)
    return (_core._config()["int8_compute_active"] and rows >= u8s8_min_rows() and k > 0
            and (group % 4 == 0 or group >= k))


def linear_int8(x, weight, bias=None, activation="none", residual=None, group=INT8_GROUP):
    """linear() in float64 on the dequantized weight q * scale of quantize_int8(weight, group), and, where
    PackedLinear quantizes x too (int8_computes), on the dequantized x of quantize_u8_rows(x, group)."""
    x = np.asarray(x, np.float32)
    w = dequantize_int8(*quantize_int8(weight, group), group)
    rows = int(np.prod(x.shape[:-1]))
    if x.ndim >= 2 and int8_computes(rows, x.shape[-1], group):
        x = dequantize_u8_rows(*quantize_u8_rows(x.reshape(rows, -1), group), group).reshape(x.shape)
    return linear(x, w, bias, activation, residual)


def round_bf16(weight):
    """float32 -> nearest bfloat16 (ties to even), returned as float32; computed on the bits, independently of
    the packing code. NaN stays NaN (adding the rounding bias to a NaN's bits could carry it into inf or -0)."""
    w = np.asarray(weight, np.float32)
    bits = w.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    return np.where(np.isnan(w), np.float32(np.nan), rounded.view(np.float32)).astype(np.float32)


# gemm.cc's kBF16MinRows: from this many rows of x on, bf16 weights run bf16 compute (x rounded to bf16 too) where
# it is active (the avx512_bf16 level)
BF16_MIN_ROWS = 4
_FLT_MIN = np.float32(2.0**-126)


def flush_denormals(x):
    """Subnormal float32 values -> zero of the same sign: what vcvtne2ps2bf16 and vdpbf16ps do with their inputs."""
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) < _FLT_MIN, np.copysign(np.float32(0), x), x).astype(np.float32)


def round_bf16_compute(x):
    """bf16 compute's rounding of the activations (and what vdpbf16ps sees of either operand): subnormals are zero,
    then round_bf16 (ties to even, NaN kept; a finite value past bf16's largest rounds to inf)."""
    return flush_denormals(round_bf16(flush_denormals(x)))


def bf16_computes(rows, k):
    """Whether PackedLinear(dtype="bf16") runs bf16 compute on `rows` rows (else weight-only): bf16 compute is active
    for the active kernels (a setting and the level, asked from cpuformer), enough rows, and K > 0."""
    from cpuformer import _core

    return _core._config()["bf16_compute_active"] and rows >= BF16_MIN_ROWS and k > 0


def linear_bf16(x, weight, bias=None, activation="none", residual=None):
    """linear() in float64 on the bf16-rounded weight, and, where PackedLinear rounds x too (bf16_computes), on the
    bf16-rounded x: products of two bf16 are exact, so only the fp32 summation differs from this."""
    x = np.asarray(x, np.float32)
    w = round_bf16(weight)
    rows = int(np.prod(x.shape[:-1]))
    if x.ndim >= 2 and bf16_computes(rows, x.shape[-1]):
        x, w = round_bf16_compute(x), flush_denormals(w)
    return linear(x, w, bias, activation, residual)


# PackedLinear dtype -> (float64 reference on the weights as that dtype stores them, its tolerance name)
LINEAR_BY_DTYPE = {"float32": (linear, "linear"), "bf16": (linear_bf16, "linear_bf16"),
                   "int8": (linear_int8, "linear_int8")}


def layer_norm(x, weight, bias, eps=1e-5):
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=-1, keepdims=True)


def embedding(ids, table):
    return np.asarray(table, np.float64)[np.asarray(ids)]


def embedding_bag(ids, offsets, table, mode="mean"):
    ends = list(offsets[1:]) + [len(ids)]
    out = np.zeros((len(offsets), table.shape[1]))
    for b, (start, end) in enumerate(zip(offsets, ends)):
        if end > start:
            rows = np.asarray(table, np.float64)[ids[start:end]]
            out[b] = rows.sum(axis=0) if mode == "sum" else rows.mean(axis=0)
    return out


def sigmoid(x):
    x = np.asarray(x, np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """torch.nn.LSTMCell: gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, split i, f, g, o -> (h', c')."""
    f64 = lambda a: np.asarray(a, np.float64)
    gates = f64(x) @ f64(w_ih).T + f64(h) @ f64(w_hh).T
    for b in (b_ih, b_hh):
        if b is not None:
            gates = gates + f64(b)
    i, f, g, o = np.split(gates, 4, axis=-1)
    c_new = sigmoid(f) * f64(c) + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_new), c_new


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """torch.nn.GRUCell: r, z, n row blocks; n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)) -> h'."""
    f64 = lambda a: np.asarray(a, np.float64)
    gi, gh = f64(x) @ f64(w_ih).T, f64(h) @ f64(w_hh).T
    if b_ih is not None:
        gi = gi + f64(b_ih)
    if b_hh is not None:
        gh = gh + f64(b_hh)
    (i_r, i_z, i_n), (h_r, h_z, h_n) = np.split(gi, 3, axis=-1), np.split(gh, 3, axis=-1)
    r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * f64(h)


def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """torch.nn.RNNCell: act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu -> h'."""
    f64 = lambda a: np.asarray(a, np.float64)
    pre = f64(x) @ f64(w_ih).T + f64(h) @ f64(w_hh).T
    for b in (b_ih, b_hh):
        if b is not None:
            pre = pre + f64(b)
    return np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0.0)


def attention(q, k, v, num_heads, attention_mask=None, causal=False, scale=None, relative_bias=None):
    """Multi-head softmax(scale q k^T) v: q [B, Tq, H*D], k/v [B, Tk, H*D], head h = columns h*D:(h+1)*D.
    attention_mask [B, Tk] of 0/1; causal lets query i see key j <= i + Tk - Tq. A query seeing no key gives 0.
    relative_bias [H, 2L - 1]: score(i, j) += relative_bias[h, j - (i + Tk - Tq) + L - 1] after the scale."""
    f64 = lambda a: np.asarray(a, np.float64)
    (batch, tq, hidden), tk = q.shape, k.shape[1]
    d = hidden // num_heads
    split = lambda x, t: f64(x).reshape(batch, t, num_heads, d).transpose(0, 2, 1, 3)  # [B, H, T, D]
    scores = split(q, tq) @ split(k, tk).transpose(0, 1, 3, 2) * (1.0 / math.sqrt(d) if scale is None else scale)
    if relative_bias is not None:
        centre = (relative_bias.shape[1] - 1) // 2
        offset = np.arange(tk)[None, :] - (np.arange(tq)[:, None] + tk - tq)  # [Tq, Tk]
        scores = scores + f64(relative_bias)[:, centre + offset][None]  # [1, H, Tq, Tk]
    visible = np.ones((batch, 1, tq, tk), bool)
    if attention_mask is not None:
        visible &= np.asarray(attention_mask).astype(bool)[:, None, None, :]
    if causal:
        visible &= np.arange(tk)[None, :] <= np.arange(tq)[:, None] + tk - tq
    scores = np.where(visible, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(row_max), row_max, 0.0))
    total = weights.sum(axis=-1, keepdims=True)
    probs = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return (probs @ split(v, tk)).transpose(0, 2, 1, 3).reshape(batch, tq, hidden)
