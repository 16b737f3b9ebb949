"""PackedLinear(dtype="int8"): weight-only int8 (pack-time per-output-feature scales, float32 activations),
against the float64 reference on the same quantized weights, swept around every ISA's micro-kernel tile."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from helpers import num_threads, rand
from test_gemm import ACTIVATIONS, EDGE_M, EDGE_N

# M = 1..8 (decode, the path int8 is for) on top of the tile edges (1x and 2x MR +-1 of every ISA).
M_VALUES = sorted(set(EDGE_M) | set(range(1, 9)))
# K: the 1- and 2-row kernels unroll k by 4 and 2 (tails 1..3), odd K, and a long K.
K_VALUES = [1, 2, 3, 4, 5, 7, 8, 9, 17, 63, 121, 257, 600]


@pytest.mark.parametrize("m", M_VALUES)
def test_edge_shapes_m_n(isa, m):
    rng = np.random.default_rng(m)
    x = rand(rng, m, 37)
    for j, n in enumerate(EDGE_N):
        w, b = rand(rng, n, 37), rand(rng, n)
        act = ACTIVATIONS[j % len(ACTIVATIONS)]
        res = rand(rng, m, n)
        y = ops.PackedLinear(w, b, activation=act, dtype="int8")(x, residual=res)
        ref.assert_close(y, ref.linear_int8(x, w, b, act, res), "linear_int8", scale=10, err_msg=f"m={m}, n={n}")


@pytest.mark.parametrize("k", K_VALUES)
def test_edge_shapes_k(isa, k):
    rng = np.random.default_rng(k)
    for m in (1, 2, 3, 8, 13):
        x, w = rand(rng, m, k), rand(rng, 33, k)
        y = ops.PackedLinear(w, dtype="int8")(x)
        ref.assert_close(y, ref.linear_int8(x, w), "linear_int8", scale=np.sqrt(k), err_msg=f"m={m}")


@pytest.mark.parametrize("m,n,k", [(100, 40, 2100), (600, 400, 1025)])
def test_k_blocks(isa, m, n, k):
    # As in test_gemm.py: (100, 40, 2100) blocks K by 1024 with A read in place; (600, 400, 1025) packs A and
    # ends with a 1-wide K block. Partial sums are stored scaled, so C += of the next block stays in output units.
    rng = np.random.default_rng(k)
    x, w, b, res = rand(rng, m, k), rand(rng, n, k), rand(rng, n), rand(rng, m, n)
    y = ops.PackedLinear(w, b, activation="gelu", dtype="int8")(x, residual=res)
    rows = rng.choice(m, min(m, 100), replace=False)
    ref.assert_close(y[rows], ref.linear_int8(x[rows], w, b, "gelu", res[rows]), "linear_int8", scale=np.sqrt(k))


def test_in_out_layout_matches_out_in(isa):
    rng = np.random.default_rng(1)
    x, w, b = rand(rng, 9, 50), rand(rng, 31, 50), rand(rng, 31)
    conv1d = ops.PackedLinear(np.ascontiguousarray(w.T), b, layout="in_out", dtype="int8")
    np.testing.assert_array_equal(conv1d(x), ops.PackedLinear(w, b, dtype="int8")(x))


def test_quantization_matches_numpy(isa):
    rng = np.random.default_rng(2)
    w = rand(rng, 70, 45, scale=3.0)
    w[3] = 0.0                    # all-zero row: scale 1, q 0
    w[5] = 1e-44                  # subnormal row: max / 127 underflows to 0, so the same rule applies
    w[7, :6] = [127, 0.5, 1.5, 2.5, -0.5, -2.5]  # scale exactly 1: ties round to even
    w[7, 6:] = 0.0
    lin = ops.PackedLinear(w, dtype="int8")
    q, scale = lin.quantized_weight
    q_ref, scale_ref = ref.quantize_int8(w)
    np.testing.assert_array_equal(scale, scale_ref)
    np.testing.assert_array_equal(q, q_ref)
    assert q.dtype == np.int8 and scale.dtype == np.float32 and q.shape == (70, 45)
    assert scale[3] == 1 and scale[5] == 1 and not q[3].any() and not q[5].any()
    np.testing.assert_array_equal(q[7, :6], [127, 0, 2, 2, 0, -2])
    assert np.abs(q).max() == 127
    np.testing.assert_array_equal(lin.weight, q * scale[:, None])  # weight: the dequantized copy
    conv1d = ops.PackedLinear(np.ascontiguousarray(w.T), layout="in_out", dtype="int8")
    np.testing.assert_array_equal(conv1d.quantized_weight[0], q_ref)


def test_properties_and_zero_sizes(isa):
    rng = np.random.default_rng(4)
    w, b = rand(rng, 6, 8), rand(rng, 6)
    lin = ops.PackedLinear(w, b, dtype="int8")
    assert (lin.dtype, lin.in_features, lin.out_features, lin.has_bias) == ("int8", 8, 6, True)
    assert ops.PackedLinear(w).dtype == "float32"
    assert "dtype='int8'" in repr(lin)
    np.testing.assert_array_equal(lin.bias, b)
    assert lin(np.zeros((0, 8), np.float32)).shape == (0, 6)
    y = ops.PackedLinear(np.zeros((6, 0), np.float32), b, dtype="int8")(np.zeros((2, 0), np.float32))
    np.testing.assert_array_equal(y, np.tile(b, (2, 1)))


def test_int8_close_to_float32(isa):
    # The quantization error on standard-normal data (K = 768): max |y_int8 - y_fp32| / max |y_fp32|.
    rng = np.random.default_rng(5)
    x, w, b = rand(rng, 16, 768), rand(rng, 512, 768), rand(rng, 512)
    y8 = ops.PackedLinear(w, b, dtype="int8")(x)
    y32 = ops.PackedLinear(w, b)(x)
    peak = np.abs(y32).max()
    ref.assert_close(y8 / peak, y32 / peak, "linear_int8_vs_fp32")


def test_two_threads_match_one_thread(isa):
    # The thread count changes only how columns are split into tasks, never an element's sum: equal bitwise.
    rng = np.random.default_rng(6)
    w, b = rand(rng, 1000, 300), rand(rng, 1000)
    lin = ops.PackedLinear(w, b, activation="relu", dtype="int8")
    for m in (1, 8, 200):
        x = rand(rng, m, 300)
        with num_threads(1):
            y1 = lin(x)
        with num_threads(2):
            y2 = lin(x)
        np.testing.assert_array_equal(y1, y2, err_msg=f"m={m}")


class TestBadInput:
    w = np.ones((4, 3), np.float32)

    @pytest.mark.parametrize("dtype", ["bf16", "float16", "int4", "Int8"])
    def test_unknown_dtype(self, dtype):
        with pytest.raises(ValueError, match=rf"dtype must be one of 'float32', 'int8'; got '{dtype}'"):
            ops.PackedLinear(self.w, dtype=dtype)

    def test_top_k_is_float32_only(self):
        lin = ops.PackedLinear(self.w, dtype="int8")
        with pytest.raises(ValueError, match=r"top_k supports dtype 'float32' only; this PackedLinear has dtype 'int8'"):
            lin.top_k(np.ones((1, 3), np.float32), 2)

    def test_quantized_weight_needs_int8(self):
        with pytest.raises(ValueError, match=r"quantized_weight needs dtype 'int8'; this PackedLinear has dtype 'float32'"):
            ops.PackedLinear(self.w).quantized_weight

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite_weight(self, bad):
        w = self.w.copy()
        w[2, 1] = bad
        with pytest.raises(ValueError, match=r"int8 quantization needs finite weights; output feature 2 has an inf or NaN"):
            ops.PackedLinear(w, dtype="int8")
