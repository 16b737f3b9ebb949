"""PackedLinear(dtype="int8") from reference.U8S8_MIN_ROWS rows on: int8 compute (activations quantized per row and
K group to u8 with a zero point, exact int32 sums per group). Tested exactly, as issue 10 asks: the result equals
a float64 computation on the same quantized values (reference.quantize_u8_rows / quantize_int8, written
independently in numpy) within fp32 rounding, on every ISA level this host runs (the nibble kernels without VNNI,
vpdpbusd with it)."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import _core, ops
from helpers import num_threads, rand

MIN_ROWS = ref.U8S8_MIN_ROWS
VNNI_LEVELS = ("avx2_vnni", "avx512_vnni", "avx512_bf16")  # avx512_bf16 = avx512_vnni's table + bf16 compute


pytestmark = pytest.mark.usefixtures("int8_compute_on")


def test_default_is_on_only_where_it_pays():
    _core._set_int8_compute("auto")
    config = _core._config()
    # The VNNI levels, and avx512_bf16 (avx512_vnni plus bf16 compute).
    vnni = config["isa"] in VNNI_LEVELS
    assert config["int8_compute_active"] == vnni
    if vnni:
        assert config["int8_compute"] == "vpdpbusd (VNNI)"
    # With VNNI, int8 compute beats the weight-only reader from one row on (decode); without, from 16 rows.
    assert config["int8_compute_min_rows"] == (1 if vnni else ref.U8S8_MIN_ROWS)
    with pytest.raises(ValueError, match=r"int8 compute mode must be 'auto', 'on' or 'off'; got 'fast'"):
        _core._set_int8_compute("fast")


def check(lin, x, w, b=None, group=ref.INT8_GROUP, activation="none", residual=None, what=""):
    assert ref.int8_computes(x.shape[0], x.shape[1], group), what
    expected = ref.linear_int8(x, w, b, activation, residual, group=group)
    ref.assert_close(lin(x, residual=residual), expected, "linear_int8", scale=np.sqrt(x.shape[1]), err_msg=what)


# Rows around every level's int8 tile (1, 3 and 6 rows) and the quantizer's 4-row steps; K around the k4 interleave,
# the nibble kernels' 32-k int16 runs, the 64-k group and the 1024 K block.
@pytest.mark.parametrize("m", [MIN_ROWS, MIN_ROWS + 1, 19, 37, 100])
@pytest.mark.parametrize("k", [4, 8, 28, 32, 36, 60, 64, 68, 200, 384, 1030, 2100])
def test_matches_float64_on_the_quantized_values(isa, m, k):
    rng = np.random.default_rng(m * 10_000 + k)
    n = 45  # a full panel and a partial one on every level
    x, w, b = rand(rng, m, k), rand(rng, n, k), rand(rng, n)
    check(ops.PackedLinear(w, b, activation="gelu", dtype="int8"), x, w, b, activation="gelu", what=f"m={m} k={k}")


# Decode-sized calls: int8 compute on the VNNI levels, weight-only elsewhere (linear_int8 follows the active path).
@pytest.mark.parametrize("m", [1, 2, 3, 5, 6, 7, 13, MIN_ROWS - 1])
@pytest.mark.parametrize("k", [4, 36, 64, 200, 1030])
def test_few_rows(isa, m, k):
    rng = np.random.default_rng(m * 100 + k)
    x, w, b = rand(rng, m, k), rand(rng, 45, k), rand(rng, 45)
    lin = ops.PackedLinear(w, b, activation="gelu", dtype="int8")
    assert ref.int8_computes(m, k) == (isa in VNNI_LEVELS), f"m={m} k={k}"
    expected = ref.linear_int8(x, w, b, "gelu", None)
    ref.assert_close(lin(x), expected, "linear_int8", scale=np.sqrt(k), err_msg=f"m={m} k={k}")


@pytest.mark.parametrize("group", [0, 4, 32, 64, 128, 5000])
def test_group_sizes(isa, group):
    # 0 and 5000: one group of all K (here K is not a multiple of 4: the last k4 row is zero-padded).
    rng = np.random.default_rng(group)
    k = 1030
    x, w = rand(rng, 40, k), rand(rng, 70, k)
    check(ops.PackedLinear(w, dtype="int8", group_size=group), x, w, group=group, what=f"group={group}")


def test_group_not_a_multiple_of_4_runs_weight_only(isa):
    # Groups of 7 cannot start on k4 rows, so int8 weights stay weight-only (fp32 activations) at any M.
    rng = np.random.default_rng(7)
    x, w = rand(rng, 64, 700), rand(rng, 33, 700)
    expected = ref.linear(x, ref.dequantize_int8(*ref.quantize_int8(w, 7), 7))
    ref.assert_close(ops.PackedLinear(w, dtype="int8", group_size=7)(x), expected, "linear_int8", scale=np.sqrt(700))


def test_extreme_values_are_exact(isa):
    # Every q_a at 0 or 255 and every q_b at +-127: the largest int16 partial sums of the nibble kernels (8 k4 steps
    # of 2 * 15 * 127) and the largest int32 group sums. Any saturation would show as a large error.
    rng = np.random.default_rng(3)
    m, n, k = 24, 40, 512
    x = np.where(rng.random((m, k)) < 0.5, np.float32(-1.0), np.float32(3.0)).astype(np.float32)
    x[:, 0] = -1.0
    x[:, 1] = 3.0
    w = np.where(rng.random((n, k)) < 0.5, np.float32(-2.0), np.float32(2.0)).astype(np.float32)
    x_all_max = np.full((m, k), 3.0, np.float32)
    w_all_max = np.full((n, k), 2.0, np.float32)
    for xs, ws in ((x, w), (x_all_max, w_all_max), (x_all_max, -w_all_max)):
        check(ops.PackedLinear(ws, dtype="int8"), xs, ws)


def test_residual_and_3d_input(isa):
    rng = np.random.default_rng(11)
    x, w, b = rand(rng, 4, 9, 96), rand(rng, 50, 96), rand(rng, 50)
    res = rand(rng, 4, 9, 50)
    lin = ops.PackedLinear(w, b, activation="relu", dtype="int8")
    expected = ref.linear_int8(x, w, b, "relu", res)
    ref.assert_close(lin(x, residual=res), expected, "linear_int8", scale=np.sqrt(96))


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_non_finite_activations_propagate(isa, special):
    # A row holding NaN or inf cannot be quantized: the call multiplies in fp32 instead, so special values
    # propagate exactly as with float32 weights (NaN in, NaN out), and the other rows stay correct.
    rng = np.random.default_rng(5)
    x, w = rand(rng, 32, 128), rand(rng, 20, 128)
    x[3, 17] = special
    lin = ops.PackedLinear(w, dtype="int8")
    y = lin(x)
    fp32_on_int8_weights = ref.linear(x, ref.dequantize_int8(*ref.quantize_int8(w)))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(fp32_on_int8_weights))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(fp32_on_int8_weights))
    ok = np.isfinite(fp32_on_int8_weights).all(axis=1)
    ref.assert_close(y[ok], fp32_on_int8_weights[ok], "linear_int8", scale=np.sqrt(128))


def test_zero_rows_and_constant_rows(isa):
    # All-zero rows (scale 1, zero point 0) and rows of one value (only one side of 0 in range).
    rng = np.random.default_rng(9)
    x = rand(rng, 20, 256)
    x[0] = 0
    x[1] = 0.25
    x[2] = -7
    w = rand(rng, 36, 256)
    check(ops.PackedLinear(w, dtype="int8"), x, w)


def test_two_threads_match_one_thread(isa):
    rng = np.random.default_rng(2)
    x, w, b = rand(rng, 200, 384), rand(rng, 1536, 384), rand(rng, 1536)
    lin = ops.PackedLinear(w, b, activation="gelu", dtype="int8")
    with num_threads(1):
        one = lin(x)
    with num_threads(2):
        two = lin(x)
    np.testing.assert_array_equal(one, two)


def test_close_to_float32_weights(isa):
    # The accuracy cost of quantizing activations too, on standard-normal data (models: tests of each model class).
    rng = np.random.default_rng(1)
    x, w = rand(rng, 64, 768), rand(rng, 256, 768)
    exact = x.astype(np.float64) @ w.T.astype(np.float64)
    y = ops.PackedLinear(w, dtype="int8")(x)
    assert np.abs(y - exact).max() / np.abs(exact).max() < 0.02


def test_smoothed_weights_match_float64_on_the_quantized_values(isa):
    # smooth=s: W * s is quantized and x / s multiplied; int8 compute quantizes x / s per row and group.
    rng = np.random.default_rng(21)
    k, n = 256, 40
    w, b = rand(rng, n, k), rand(rng, n)
    s = np.exp(rng.normal(size=k)).astype(np.float32)
    lin = ops.PackedLinear(w, b, dtype="int8", smooth=s)
    w_smoothed = (w * s).astype(np.float32)
    inv = (np.float32(1) / s).astype(np.float32)
    for m in (3, MIN_ROWS, 50):  # weight-only below MIN_ROWS, int8 compute from it
        x = rand(rng, m, k)
        expected = ref.linear_int8((x * inv).astype(np.float32), w_smoothed, b)
        ref.assert_close(lin(x), expected, "linear_int8", scale=np.sqrt(k), err_msg=f"m={m}")
    # The weight comes back unsmoothed.
    ref.assert_close(lin.weight, ref.dequantize_int8(*ref.quantize_int8(w_smoothed)) * inv, "linear_int8")


class TestSmoothBadInput:
    w = np.ones((4, 8), np.float32)

    def test_needs_int8(self):
        with pytest.raises(ValueError, match=r"smooth needs dtype='int8'.*got dtype 'float32'"):
            ops.PackedLinear(self.w, smooth=np.ones(8, np.float32))

    def test_shape(self):
        with pytest.raises(ValueError, match=r"smooth must have shape \(8,\) \(one factor per input feature\)"):
            ops.PackedLinear(self.w, dtype="int8", smooth=np.ones(7, np.float32))

    @pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
    def test_positive_finite(self, bad):
        s = np.ones(8, np.float32)
        s[5] = bad
        with pytest.raises(ValueError, match=r"smooth must hold positive finite factors; input feature 5"):
            ops.PackedLinear(self.w, dtype="int8", smooth=s)
