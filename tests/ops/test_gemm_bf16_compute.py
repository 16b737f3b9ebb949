"""PackedLinear(dtype="bf16") from reference.BF16_MIN_ROWS rows on: bf16 compute (avx512_bf16: x rounded to bf16 once
per call, vdpbf16ps sums pairs of exact bf16 products into fp32). Tested exactly: the result equals a float64
computation on the same bf16 values (reference.round_bf16_compute, written independently in numpy) within fp32
summation rounding, on every ISA level this host runs; levels without the kernel run weight-only (fp32 activations)
whatever the mode, and say so in _config(). The weight-only path must stay what it was: equal, bit for bit, to
float32 weights holding the bf16-rounded values (same tile loop, same order of FMAs)."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import _core, ops
from helpers import num_threads, rand
from test_gemm import ACTIVATIONS, EDGE_N
from test_special_values import assert_special_close, matmul64

MIN_ROWS = ref.BF16_MIN_ROWS
KERNEL = "vdpbf16ps 12x32 (AVX512_BF16)"
NO_KERNEL = "none (weight-only; needs avx512_bf16)"

pytestmark = pytest.mark.usefixtures("bf16_compute_on")


def computes_here() -> bool:
    return _core._config()["bf16_compute_active"]


def check(lin, x, w, b=None, activation="none", residual=None, what=""):
    rows, k = int(np.prod(x.shape[:-1])), x.shape[-1]
    # The reference must take the same path as the op: bf16 compute exactly where the level has it.
    assert ref.bf16_computes(rows, k) == (computes_here() and rows >= MIN_ROWS and k > 0), what
    expected = ref.linear_bf16(x, w, b, activation, residual)
    ref.assert_close(lin(x, residual=residual), expected, "linear_bf16", scale=np.sqrt(max(k, 1)), err_msg=what)


# ---- the mode switch and _config ---------------------------------------------------------------------------------

def test_config_says_which_kernel_runs(isa):
    config = _core._config()
    assert config["bf16_compute_mode"] == "on"
    assert config["bf16_compute_min_rows"] == MIN_ROWS
    if isa == "avx512_bf16":
        assert config["bf16_compute"] == KERNEL and config["bf16_compute_active"]
    else:  # no kernel: weight-only even with the mode on
        assert config["bf16_compute"] == NO_KERNEL and not config["bf16_compute_active"]


@pytest.mark.parametrize("mode", ["auto", "on", "off"])
def test_modes(isa, mode):
    _core._set_bf16_compute(mode)
    config = _core._config()
    assert config["bf16_compute_mode"] == mode
    # auto is on wherever the kernel is (it keeps MiniLM's min cosine >= 0.9999: docs/ARCHITECTURE.md).
    assert config["bf16_compute_active"] == (isa == "avx512_bf16" and mode != "off")
    rng = np.random.default_rng(4)
    x, w, b = rand(rng, 40, 130), rand(rng, 50, 130), rand(rng, 50)
    check(ops.PackedLinear(w, b, activation="gelu", dtype="bf16"), x, w, b, "gelu", what=mode)


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match=r"bf16 compute mode must be 'auto', 'on' or 'off'; got 'fast'"):
        _core._set_bf16_compute("fast")


def test_show_config_names_the_bf16_kernel(isa):
    import io

    import cpuformer

    buf = io.StringIO()
    cpuformer.show_config(file=buf)
    line = next(s for s in buf.getvalue().splitlines() if s.strip().startswith("bf16 kernel:"))
    assert (KERNEL in line and "weight-only below" in line) if isa == "avx512_bf16" else ("weight-only" in line)


def test_off_and_on_differ_only_where_the_kernel_is(isa):
    rng = np.random.default_rng(8)
    x, w = rand(rng, 64, 300), rand(rng, 40, 300)
    lin = ops.PackedLinear(w, dtype="bf16")
    on = lin(x)
    _core._set_bf16_compute("off")
    off = lin(x)
    assert (not np.array_equal(on, off)) == (isa == "avx512_bf16")


# ---- exactness on the bf16 values ----------------------------------------------------------------------------------

# M at and around the threshold, around the 12-row tile and several row tiles; K: 1, odd K (the zero pad of the last
# pair), around the 32-float conversion step, long K.
@pytest.mark.parametrize("m", [1, MIN_ROWS - 1, MIN_ROWS, MIN_ROWS + 1, 24, 25, 37, 100])
@pytest.mark.parametrize("k", [1, 2, 3, 31, 32, 33, 63, 64, 65, 384, 1023])
def test_matches_float64_on_the_bf16_values(isa, m, k):
    rng = np.random.default_rng(m * 10_000 + k)
    n = 45  # a full panel and a partial one on every level
    x, w, b = rand(rng, m, k), rand(rng, n, k), rand(rng, n)
    check(ops.PackedLinear(w, b, activation="gelu", dtype="bf16"), x, w, b, "gelu", what=f"m={m} k={k}")


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_bias_residual_and_n(isa, activation):
    rng = np.random.default_rng(len(activation))
    x = rand(rng, 29, 77)
    for n in EDGE_N:  # N around every level's panel width
        w, b, res = rand(rng, n, 77), rand(rng, n), rand(rng, 29, n)
        lin = ops.PackedLinear(w, b, activation=activation, dtype="bf16")
        check(lin, x, w, b, activation, res, what=f"n={n}")
        check(ops.PackedLinear(w, dtype="bf16"), x, w, what=f"n={n}, no bias")


@pytest.mark.parametrize("m,n,k", [(100, 40, 2100), (600, 70, 1025), (90, 33, 2049)])
def test_k_blocks(isa, m, n, k):
    # K blocked by 1024 (each block adds onto C); 1025 and 2049 end with a 1-wide block: one pair of (k, pad).
    rng = np.random.default_rng(k)
    x, w, b, res = rand(rng, m, k), rand(rng, n, k), rand(rng, n), rand(rng, m, n)
    y = ops.PackedLinear(w, b, activation="relu", dtype="bf16")(x, residual=res)
    rows = rng.choice(m, min(m, 100), replace=False)
    ref.assert_close(y[rows], ref.linear_bf16(x, w, b, "relu", res)[rows], "linear_bf16", scale=np.sqrt(k))


def test_3d_input_counts_all_rows(isa):
    # [2, 8, K] is 16 rows: bf16 compute from the threshold on, counted over the batch dims.
    rng = np.random.default_rng(12)
    x, w, b, res = rand(rng, 2, MIN_ROWS // 2, 96), rand(rng, 50, 96), rand(rng, 50), rand(rng, 2, MIN_ROWS // 2, 50)
    check(ops.PackedLinear(w, b, activation="gelu_tanh", dtype="bf16"), x, w, b, "gelu_tanh", res)


def test_rounding_ties_and_large_values(isa):
    # Activations exactly halfway between two bf16 (ties go to even), just above / below, and values that round up
    # to the next binade; a finite value past bf16's largest (3.4e38 rounds to inf in bf16).
    rng = np.random.default_rng(13)
    m, k = 32, 64
    base = np.float32(1.0) + np.float32(2.0**-8) * rng.integers(0, 128, size=(m, k)).astype(np.float32)
    half = np.float32(2.0**-8) / 2
    x = (base + half * rng.choice([-1.0, 1.0, 0.5, 0.0], size=(m, k)).astype(np.float32)).astype(np.float32)
    x[0, :4] = [np.float32(1.9999999), np.float32(-1.9999999), np.float32(2.0**-126), np.float32(-(2.0**-127))]
    w = rand(rng, 20, k)
    check(ops.PackedLinear(w, dtype="bf16"), x, w)
    if computes_here():  # (weight-only, 3.4e38 * w overflows fp32 sums instead: test_special_values covers that)
        big = rand(rng, m, k)
        big[5, 3] = np.float32(3.4e38)  # -> inf in bf16: row 5 is +-inf (or NaN where a weight rounds to 0)
        y = ops.PackedLinear(w, dtype="bf16")(big)
        assert np.isinf(y[5]).all()
        assert_special_close(y, matmul64(ref.round_bf16_compute(big), ref.round_bf16(w)), "linear_bf16",
                             scale=np.sqrt(k))


# ---- special values, threads, weight-only --------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["x", "w"])
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_propagate_like_torch(isa, where, special):
    rng = np.random.default_rng(5)
    m, n, k = 40, 45, 128
    x, w, b = rand(rng, m, k), rand(rng, n, k), rand(rng, n)
    if where == "x":
        x[3, 17] = special
        x[30, 0] = special
    else:
        w[7, 17] = special
        w[44, 127] = special
    w[9, 17] = 0.0  # inf * 0 = NaN in that column's sum, as in IEEE / torch
    lin = ops.PackedLinear(w, b, activation="gelu", dtype="bf16")
    seen = ref.round_bf16_compute(x) if computes_here() else x
    with np.errstate(invalid="ignore", over="ignore"):
        expected = ref.gelu(matmul64(seen, ref.round_bf16(w)) + b)
    y = lin(x)
    assert_special_close(y, expected, "linear_bf16", scale=np.sqrt(k), err_msg=f"{where} {special}")
    if np.isnan(special):
        assert np.isnan(y[3]).all() if where == "x" else np.isnan(y[:, 7]).all()


def test_two_threads_match_one_thread(isa):
    rng = np.random.default_rng(2)
    x, w, b = rand(rng, 200, 384), rand(rng, 1536, 384), rand(rng, 1536)
    lin = ops.PackedLinear(w, b, activation="gelu", dtype="bf16")
    with num_threads(1):
        one = lin(x)
    with num_threads(2):
        two = lin(x)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("mode", ["off", "on"])
@pytest.mark.parametrize("m", [1, 3, 13, 24, 25, 40, 100])
def test_weight_only_is_float32_on_the_rounded_weights_bitwise(isa, mode, m):
    # Weight-only bf16 (mode off, or below the threshold, or a level without the kernel) runs the fp32 tile loop
    # on B widened exactly from the k2 panels, so it equals float32 weights holding the same values bit for bit:
    # reading the interleaved layout changed nothing.
    _core._set_bf16_compute(mode)
    rng = np.random.default_rng(m)
    for k in (1, 7, 64, 1025, 2100):
        x, w, b, res = rand(rng, m, k), rand(rng, 45, k), rand(rng, 45), rand(rng, m, 45)
        bf16 = ops.PackedLinear(w, b, activation="gelu", dtype="bf16")
        fp32 = ops.PackedLinear(ref.round_bf16(w), b, activation="gelu")
        np.testing.assert_array_equal(bf16.weight, ref.round_bf16(w))  # unpacking the k2 layout, odd K included
        if mode == "off" or not ref.bf16_computes(m, k):
            np.testing.assert_array_equal(bf16(x, residual=res), fp32(x, residual=res), err_msg=f"k={k}")


def test_weight_rows_lookup_reads_the_k2_layout(isa):
    rng = np.random.default_rng(3)
    w = rand(rng, 70, 33)
    lin = ops.PackedLinear(w, dtype="bf16")
    ids = np.array([0, 69, 31, 32, 5])
    np.testing.assert_array_equal(lin.rows(ids), ref.round_bf16(w)[ids])


def _config_in_subprocess(**env) -> str:
    import os
    import subprocess
    import sys

    code = ("from cpuformer import _core; c = _core._config(); "
            "print(c['isa'], c['bf16_compute_mode'], c['bf16_compute_active'])")
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.parametrize("value", ["on", "off", "auto", "bogus"])
def test_env_sets_the_mode(value):
    best = _core._config()["isa_max_allowed"]
    mode = value if value != "bogus" else "auto"  # anything else is auto, as CPUFORMER_INT8_COMPUTE
    assert _config_in_subprocess(CPUFORMER_BF16_COMPUTE=value) == \
        f"{best} {mode} {best == 'avx512_bf16' and mode != 'off'}"


def test_isa_cap_below_avx512_bf16_means_weight_only():
    out = _config_in_subprocess(CPUFORMER_ISA="avx512_vnni", CPUFORMER_BF16_COMPUTE="on").split()
    assert out[0] != "avx512_bf16" and out[2] == "False"
