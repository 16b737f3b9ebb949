"""PackedLinear(dtype="bf16" | "int8"): weight-only bf16 and int8 (pack-time scales per output feature and group
of K, float32 activations), against the float64 reference on the same rounded / quantized weights, swept around
every ISA's micro-kernel tile."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from helpers import num_threads, rand
from test_gemm import ACTIVATIONS, EDGE_M, EDGE_N

DTYPES = ["bf16", "int8"]
# M = 1..8 (decode, the path these weights are for) on top of the tile edges (1x and 2x MR +-1 of every ISA).
M_VALUES = sorted(set(EDGE_M) | set(range(1, 9)))
# K: the 1- and 2-row kernels unroll k by 4 and 2 (tails 1..3), odd K, K around the int8 group (64), a long K.
K_VALUES = [1, 2, 3, 4, 5, 7, 8, 9, 17, 63, 64, 65, 121, 257, 600]


def reference(dtype, x, w, *args, **kwargs):
    fn, what = ref.LINEAR_BY_DTYPE[dtype]
    return fn(x, w, *args, **kwargs), what


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", M_VALUES)
def test_edge_shapes_m_n(isa, dtype, m):
    rng = np.random.default_rng(m)
    x = rand(rng, m, 37)
    for j, n in enumerate(EDGE_N):
        w, b = rand(rng, n, 37), rand(rng, n)
        act = ACTIVATIONS[j % len(ACTIVATIONS)]
        res = rand(rng, m, n)
        y = ops.PackedLinear(w, b, activation=act, dtype=dtype)(x, residual=res)
        expected, what = reference(dtype, x, w, b, act, res)
        ref.assert_close(y, expected, what, scale=10, err_msg=f"m={m}, n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", K_VALUES)
def test_edge_shapes_k(isa, dtype, k):
    rng = np.random.default_rng(k)
    for m in (1, 2, 3, 8, 13):
        x, w = rand(rng, m, k), rand(rng, 33, k)
        y = ops.PackedLinear(w, dtype=dtype)(x)
        expected, what = reference(dtype, x, w)
        ref.assert_close(y, expected, what, scale=np.sqrt(k), err_msg=f"m={m}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(100, 40, 2100), (600, 400, 1025)])
def test_k_blocks(isa, dtype, m, n, k):
    # As in test_gemm.py: (100, 40, 2100) blocks K by 1024 with A read in place; (600, 400, 1025) packs A and
    # ends with a 1-wide K block. Each K block's sum is in output units, so C += of the next block is too.
    rng = np.random.default_rng(k)
    x, w, b, res = rand(rng, m, k), rand(rng, n, k), rand(rng, n), rand(rng, m, n)
    y = ops.PackedLinear(w, b, activation="gelu", dtype=dtype)(x, residual=res)
    rows = rng.choice(m, min(m, 100), replace=False)
    expected, what = reference(dtype, x[rows], w, b, "gelu", res[rows])
    ref.assert_close(y[rows], expected, what, scale=np.sqrt(k))


@pytest.mark.parametrize("group", [0, 1, 7, 64, 100, 128, 5000])
def test_int8_group_sizes(isa, group):
    # 0: one scale per output feature; 100 does not divide the K block (1024), so blocks shrink to 1000 and
    # still start on a group; 5000 > K is one group. m = 100 blocks K, m = 3 streams all of K at once.
    rng = np.random.default_rng(group)
    k = 2100
    w, b = rand(rng, 40, k), rand(rng, 40)
    lin = ops.PackedLinear(w, b, dtype="int8", group_size=group)
    assert lin.group_size == (k if group in (0, 5000) else group)
    q, scale = lin.quantized_weight
    q_ref, scale_ref = ref.quantize_int8(w, group)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(scale, scale_ref)
    for m in (3, 100):
        x = rand(rng, m, k)
        ref.assert_close(lin(x), ref.linear_int8(x, w, b, group=group), "linear_int8", scale=np.sqrt(k),
                         err_msg=f"m={m}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_out_layout_matches_out_in(isa, dtype):
    rng = np.random.default_rng(1)
    x, w, b = rand(rng, 9, 150), rand(rng, 31, 150), rand(rng, 31)
    conv1d = ops.PackedLinear(np.ascontiguousarray(w.T), b, layout="in_out", dtype=dtype)
    np.testing.assert_array_equal(conv1d(x), ops.PackedLinear(w, b, dtype=dtype)(x))


def test_quantization_matches_numpy(isa):
    rng = np.random.default_rng(2)
    w = rand(rng, 70, 45, scale=3.0)
    w[3] = 0.0                    # all-zero row: scale 1, q 0
    w[5] = 1e-44                  # subnormal row: max / 127 underflows to 0, so the same rule applies
    w[7, :6] = [127, 0.5, 1.5, 2.5, -0.5, -2.5]  # scale exactly 1: ties round to even
    w[7, 6:] = 0.0
    lin = ops.PackedLinear(w, dtype="int8", group_size=0)
    q, scale = lin.quantized_weight
    q_ref, scale_ref = ref.quantize_int8(w, 0)
    np.testing.assert_array_equal(scale, scale_ref)
    np.testing.assert_array_equal(q, q_ref)
    assert q.dtype == np.int8 and scale.dtype == np.float32 and q.shape == (70, 45) and scale.shape == (70, 1)
    assert scale[3, 0] == 1 and scale[5, 0] == 1 and not q[3].any() and not q[5].any()
    np.testing.assert_array_equal(q[7, :6], [127, 0, 2, 2, 0, -2])
    assert np.abs(q).max() == 127
    np.testing.assert_array_equal(lin.weight, q * scale)  # weight: the dequantized copy
    conv1d = ops.PackedLinear(np.ascontiguousarray(w.T), layout="in_out", dtype="int8", group_size=0)
    np.testing.assert_array_equal(conv1d.quantized_weight[0], q_ref)


def test_int8_groups_follow_the_weights(isa):
    # One outlier raises only its own group's scale: the other groups of that row keep their resolution.
    rng = np.random.default_rng(3)
    w = rand(rng, 8, 256)
    w[2, 70] = 100.0
    q, scale = ops.PackedLinear(w, dtype="int8").quantized_weight
    assert scale.shape == (8, 4)
    np.testing.assert_array_equal(scale[2, [0, 2, 3]], ref.quantize_int8(w)[1][2, [0, 2, 3]])
    assert scale[2, 1] == np.float32(100.0) / np.float32(127) and q[2, 70] == 127


def test_bf16_rounding_matches_numpy(isa):
    rng = np.random.default_rng(4)
    w = rand(rng, 33, 40, scale=5.0)
    # exact ties: 1 + 2^-8 (halfway, even below -> 1), 1 + 3 * 2^-8 (halfway, even above), the max float, inf,
    # a subnormal, -0.0
    w[0, :7] = [1 + 2.0**-8, 1 + 3 * 2.0**-8, np.finfo(np.float32).max, np.inf, -np.inf, 1e-40, -0.0]
    lin = ops.PackedLinear(w, dtype="bf16")
    np.testing.assert_array_equal(lin.weight, ref.round_bf16(w))
    assert lin.weight[0, 0] == 1.0 and lin.weight[0, 1] == 1 + 2.0**-6 and lin.weight[0, 2] == np.inf
    assert np.signbit(lin.weight[0, 6])
    w[1, 0] = np.nan
    assert np.isnan(ops.PackedLinear(w, dtype="bf16").weight[1, 0])  # NaN stays NaN (the bit trick alone gives inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_properties_and_zero_sizes(isa, dtype):
    rng = np.random.default_rng(4)
    w, b = rand(rng, 6, 8), rand(rng, 6)
    lin = ops.PackedLinear(w, b, dtype=dtype)
    assert (lin.dtype, lin.in_features, lin.out_features, lin.has_bias) == (dtype, 8, 6, True)
    assert ops.PackedLinear(w).dtype == "float32"
    assert f"dtype='{dtype}'" in repr(lin)
    assert lin.group_size == (8 if dtype == "int8" else None)
    np.testing.assert_array_equal(lin.bias, b)
    assert lin(np.zeros((0, 8), np.float32)).shape == (0, 6)
    y = ops.PackedLinear(np.zeros((6, 0), np.float32), b, dtype=dtype)(np.zeros((2, 0), np.float32))
    np.testing.assert_array_equal(y, np.tile(b, (2, 1)))


def test_nbytes_follow_the_dtype(isa):
    # Panels are padded to whole NR-column panels, so compare a shape that fills them: 512 x 768.
    w = np.ones((512, 768), np.float32)
    sizes = {d: ops.PackedLinear(w, dtype=d).nbytes for d in ("float32", "bf16", "int8")}
    assert sizes["float32"] == 512 * 768 * 4
    assert sizes["bf16"] == 512 * 768 * 2
    # q + one float scale and one column sum of q (int8 compute's zero-point term) per group of 64
    assert sizes["int8"] == 512 * 768 + 2 * 512 * (768 // 64) * 4


@pytest.mark.parametrize("dtype,tolerance", [("int8", "linear_int8_vs_fp32"), ("bf16", "linear_bf16_vs_fp32")])
def test_close_to_float32(isa, dtype, tolerance):
    # The storage error itself on standard-normal data (K = 768): max |y - y_fp32| / max |y_fp32|.
    rng = np.random.default_rng(5)
    x, w, b = rand(rng, 16, 768), rand(rng, 512, 768), rand(rng, 512)
    y = ops.PackedLinear(w, b, dtype=dtype)(x)
    y32 = ops.PackedLinear(w, b)(x)
    peak = np.abs(y32).max()
    ref.assert_close(y / peak, y32 / peak, tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_threads_match_one_thread(isa, dtype):
    # The thread count changes only how columns are split into tasks, never an element's sum: equal bitwise.
    rng = np.random.default_rng(6)
    w, b = rand(rng, 1000, 300), rand(rng, 1000)
    lin = ops.PackedLinear(w, b, activation="relu", dtype=dtype)
    for m in (1, 8, 200):
        x = rand(rng, m, 300)
        with num_threads(1):
            y1 = lin(x)
        with num_threads(2):
            y2 = lin(x)
        np.testing.assert_array_equal(y1, y2, err_msg=f"m={m}")


class TestBadInput:
    w = np.ones((4, 3), np.float32)

    @pytest.mark.parametrize("dtype", ["bfloat16", "float16", "int4", "Int8", "BF16"])
    def test_unknown_dtype(self, dtype):
        with pytest.raises(ValueError, match=rf"dtype must be one of 'float32', 'bf16', 'int8'; got '{dtype}'"):
            ops.PackedLinear(self.w, dtype=dtype)

    def test_negative_group_size(self):
        with pytest.raises(ValueError, match=r"group_size must be >= 0 \(0: one scale per output feature\), got -1"):
            ops.PackedLinear(self.w, dtype="int8", group_size=-1)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_top_k_is_float32_only(self, dtype):
        lin = ops.PackedLinear(self.w, dtype=dtype)
        with pytest.raises(ValueError, match=rf"top_k supports dtype 'float32' only; this PackedLinear has dtype '{dtype}'"):
            lin.top_k(np.ones((1, 3), np.float32), 2)

    @pytest.mark.parametrize("dtype", ["float32", "bf16"])
    def test_quantized_weight_needs_int8(self, dtype):
        with pytest.raises(ValueError, match=rf"quantized_weight needs dtype 'int8'; this PackedLinear has dtype '{dtype}'"):
            ops.PackedLinear(self.w, dtype=dtype).quantized_weight

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite_weight(self, bad):
        w = self.w.copy()
        w[2, 1] = bad
        with pytest.raises(ValueError, match=r"int8 quantization needs finite weights; output feature 2 has an inf or NaN"):
            ops.PackedLinear(w, dtype="int8")


@pytest.mark.parametrize("dtype", ["float32", *DTYPES])
def test_rows_are_the_stored_weight_rows(isa, dtype):
    # rows(ids) reads W[ids] back from the panels (a tied embedding's lookup): equal to the unpacked weight,
    # for ids of any shape, including padding-panel neighbours (the last rows) and repeats.
    rng = np.random.default_rng(7)
    w = rand(rng, 70, 45)
    lin = ops.PackedLinear(w, rand(rng, 70), dtype=dtype)
    ids = np.array([[0, 69, 69], [33, 5, 64]])
    np.testing.assert_array_equal(lin.rows(ids), lin.weight[ids])
    assert lin.rows(np.zeros(0, np.int64)).shape == (0, 45)
    with pytest.raises(ValueError, match=r"ids contains 70 at flat index 1, out of range for a weight with 70 output features"):
        lin.rows(np.array([1, 70]))
    with pytest.raises(ValueError, match=r"ids contains -1"):
        lin.rows(np.array([-1]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_shot_linear_takes_the_dtype(isa, dtype):
    rng = np.random.default_rng(8)
    x, w, b = rand(rng, 5, 130), rand(rng, 17, 130), rand(rng, 17)
    np.testing.assert_array_equal(ops.linear(x, w, b, "relu", dtype=dtype),
                                  ops.PackedLinear(w, b, activation="relu", dtype=dtype)(x))
    with pytest.raises(ValueError, match=r"dtype must be one of 'float32', 'bf16', 'int8'; got 'fp8'"):
        ops.linear(x, w, dtype="fp8")
