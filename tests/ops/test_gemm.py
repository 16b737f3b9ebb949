"""PackedLinear / linear against the float64 numpy reference, swept around the micro-kernel tile edges."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import reference as ref
from conftest import available_isas
from cpuformer import _core, ops
from helpers import given, rand, run_in_threads, settings, st

ACTIVATIONS = ["none", "gelu", "gelu_tanh", "relu"]


def _gemm_tiles() -> dict[str, tuple[int, int]]:
    """(MR, NR) of the micro-kernel of every ISA tested here, as the kernel table reports them."""
    tiles, previous = {}, _core._isa()
    try:
        for isa in available_isas():
            _core._set_isa(isa)
            mr, nr = _core._config()["gemm_tile"].split("x")
            tiles[isa] = (int(mr), int(nr))
    finally:
        _core._set_isa(previous)
    return tiles


def _around_multiples(step: int, multiples=(1, 2)) -> set[int]:
    return {j * step + d for j in multiples for d in (-1, 0, 1)}


# M around 1x and 2x MR and N around 1x and 2x NR of every ISA (generic 4x8, AVX2 6x16, AVX-512 12x32), so
# each ISA's full tiles, row tails and column tails all run; 63 / 65 cross several row tiles.
TILES = _gemm_tiles()
EDGE_M = sorted({1, 2, 63, 65}.union(*(_around_multiples(mr) for mr, _ in TILES.values())))
EDGE_N = sorted({1, 2, 63, 65}.union(*(_around_multiples(nr) for _, nr in TILES.values())))
# K: the 1- and 2-row kernels unroll k by 4 and 2 (tails 1..3); 118..122 are odd K; 255..257 and 600 long K.
EDGE_K = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 65, 118, 119, 120, 121, 122, 255, 256, 257, 600]


@pytest.mark.parametrize("m", EDGE_M)
def test_edge_shapes_m_n(isa, m):
    rng = np.random.default_rng(m)
    x = rand(rng, m, 37)
    for n in EDGE_N:
        w, b = rand(rng, n, 37), rand(rng, n)
        ref.assert_close(ops.PackedLinear(w, b)(x), ref.linear(x, w, b), "linear", err_msg=f"m={m}, n={n}")


@pytest.mark.parametrize("k", EDGE_K)
def test_edge_shapes_k(isa, k):
    rng = np.random.default_rng(k)
    for m in (1, 2, 13):  # the 4-way and 2-way k-unrolled rows kernels, then full tiles plus a tail
        x, w = rand(rng, m, k), rand(rng, 33, k)
        ref.assert_close(ops.PackedLinear(w)(x), ref.linear(x, w), "linear", scale=np.sqrt(k), err_msg=f"m={m}")


@pytest.mark.parametrize("k", [1023, 1024, 1025, 2100])
def test_k_blocks_with_a_in_place(isa, k):
    # 100 rows make 2 row tasks of ~50 rows; at k = 2100 such a block is past the small-A-block limit (64K
    # floats), so K is blocked by 1024 and partial sums accumulate in C, the epilogue running only on the last
    # block. 40 columns are too few panels to pack A, which is read in place.
    rng = np.random.default_rng(k)
    x, w, b = rand(rng, 100, k), rand(rng, 40, k), rand(rng, 40)
    res = rand(rng, 100, 40)
    y = ops.PackedLinear(w, b, activation="relu")(x, residual=res)
    ref.assert_close(y, ref.linear(x, w, b, "relu", res), "linear", scale=np.sqrt(k))


@pytest.mark.parametrize("k", [1023, 1024, 1025, 2100])
def test_k_blocks_with_packed_a(isa, two_threads, k):
    # 600 rows make >= 8 row tasks of ~72 rows (so 1 or 2 threads never split columns): each task spans
    # min(48, N / NR) >= 12 panels at N = 400 on every ISA, and rows >= 4 * MR, so A is packed into MR-row
    # panels; 72 x k > 64K floats, so K is blocked by 1024 (1023: one short block, 1025: a 1-wide last block).
    rng = np.random.default_rng(k)
    x, w, b = rand(rng, 600, k), rand(rng, 400, k), rand(rng, 400)
    res = rand(rng, 600, 400)
    y = ops.PackedLinear(w, b, activation="gelu")(x, residual=res)
    rows = rng.choice(600, 150, replace=False)  # a float64 reference of every row would dominate the run
    ref.assert_close(y[rows], ref.linear(x[rows], w, b, "gelu", res[rows]), "linear", scale=np.sqrt(k))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fused_bias_activation_residual(isa, activation):
    rng = np.random.default_rng(3)
    x, w, b = rand(rng, 2, 5, 70), rand(rng, 45, 70), rand(rng, 45)
    res = rand(rng, 2, 5, 45)
    lin = ops.PackedLinear(w, b, activation=activation)
    ref.assert_close(lin(x, residual=res), ref.linear(x, w, b, activation, res), "linear", scale=10)
    ref.assert_close(lin(x), ref.linear(x, w, b, activation), "linear", scale=10)


def test_large_transformer_shape(isa):
    rng = np.random.default_rng(0)
    x, w, b = rand(rng, 4096, 768), rand(rng, 3072, 768) * 0.05, rand(rng, 3072)
    y = ops.PackedLinear(w, b, activation="gelu")(x)
    rows = rng.choice(4096, 64, replace=False)  # the float64 reference on every row would dominate the run
    ref.assert_close(y[rows], ref.linear(x[rows], w, b, "gelu"), "linear", scale=10)


def test_in_out_layout_matches_out_in(isa):
    rng = np.random.default_rng(1)
    x, w, b = rand(rng, 9, 50), rand(rng, 31, 50), rand(rng, 31)
    conv1d = ops.PackedLinear(np.ascontiguousarray(w.T), b, layout="in_out")
    np.testing.assert_array_equal(conv1d(x), ops.PackedLinear(w, b)(x))
    np.testing.assert_array_equal(conv1d.weight, w)


def test_packed_keeps_its_isa_after_switch():
    rng = np.random.default_rng(2)
    x, w = rand(rng, 4, 20), rand(rng, 19, 20)
    before = _core._isa()
    lin = ops.PackedLinear(w)
    _core._set_isa("generic")
    try:
        assert lin.isa == before
        ref.assert_close(lin(x), ref.linear(x, w), "linear")
    finally:
        _core._set_isa(before)


def test_out_argument_and_properties():
    rng = np.random.default_rng(4)
    x, w, b = rand(rng, 3, 8), rand(rng, 6, 8), rand(rng, 6)
    lin = ops.PackedLinear(w, b)
    out = np.empty((3, 6), np.float32)
    result = lin(x, out=out)
    assert np.shares_memory(result, out)
    ref.assert_close(out, ref.linear(x, w, b), "linear")
    assert (lin.in_features, lin.out_features, lin.has_bias) == (8, 6, True)
    np.testing.assert_array_equal(lin.bias, b)
    assert "in_features=8" in repr(lin)


def test_non_contiguous_input_is_copied():
    rng = np.random.default_rng(5)
    x, w = rand(rng, 10, 40), rand(rng, 12, 20)
    view = x[:, ::2]
    assert not view.flags.c_contiguous
    ref.assert_close(ops.PackedLinear(w)(view), ref.linear(view, w), "linear")


def test_empty_batch_and_zero_k():
    w = np.ones((4, 3), np.float32)
    assert ops.PackedLinear(w)(np.zeros((0, 3), np.float32)).shape == (0, 4)
    b = np.arange(4, dtype=np.float32)
    y = ops.PackedLinear(np.zeros((4, 0), np.float32), b)(np.zeros((2, 0), np.float32))
    np.testing.assert_array_equal(y, np.tile(b, (2, 1)))


def test_threads_share_one_packed_layer():
    rng = np.random.default_rng(6)
    w = rand(rng, 256, 128)
    lin = ops.PackedLinear(w)
    xs = [rand(rng, 33, 128) for _ in range(8)]

    def work(x):
        for _ in range(5):
            y = lin(x)
        return y

    for x, y in zip(xs, run_in_threads(work, [(x,) for x in xs])):
        ref.assert_close(y, ref.linear(x, w), "linear", scale=10)


@pytest.mark.parametrize("dtype", list(ref.LINEAR_BY_DTYPE))
@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 40), n=st.integers(1, 70), k=st.integers(0, 300), bias=st.booleans(),
       activation=st.sampled_from(ACTIVATIONS))
def test_hypothesis_shapes(dtype, m, n, k, bias, activation):
    rng = np.random.default_rng(m * 7 + n * 13 + k)
    x, w = rand(rng, m, k), rand(rng, n, k)
    b = rand(rng, n) if bias else None
    y = ops.PackedLinear(w, b, activation=activation, dtype=dtype)(x)
    assert y.shape == (m, n)
    # bf16 / int8: against float64 on the same rounded / quantized weights (tests/reference.py rounds and
    # quantizes as the packing does, from its own code)
    reference, what = ref.LINEAR_BY_DTYPE[dtype]
    ref.assert_close(y, reference(x, w, b, activation), what, scale=max(1.0, np.sqrt(k)))


class TestBadInput:
    w = np.ones((4, 3), np.float32)

    def test_wrong_dtype(self):
        with pytest.raises(TypeError, match=r"x must have dtype float32, got float64"):
            ops.PackedLinear(self.w)(np.ones((2, 3)))
        with pytest.raises(TypeError, match=r"weight must have dtype float32"):
            ops.PackedLinear(self.w.astype(np.float16))

    def test_not_an_array(self):
        with pytest.raises(TypeError, match=r"x must be a numpy.ndarray of dtype float32, got list"):
            ops.PackedLinear(self.w)([[1.0, 2.0, 3.0]])

    def test_wrong_inner_dim(self):
        with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\), got \(2, 5\)"):
            ops.PackedLinear(self.w)(np.ones((2, 5), np.float32))

    def test_wrong_weight_rank_and_bias(self):
        with pytest.raises(ValueError, match=r"weight must have shape \(out_features, in_features\), got \(12,\)"):
            ops.PackedLinear(np.ones(12, np.float32))
        with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
            ops.PackedLinear(self.w, np.ones(5, np.float32))

    def test_bad_activation_and_layout(self):
        with pytest.raises(ValueError, match=r"activation must be one of 'none', 'gelu', 'gelu_tanh', 'relu'; got 'tanh'"):
            ops.PackedLinear(self.w, activation="tanh")
        with pytest.raises(ValueError, match=r"layout must be 'out_in'"):
            ops.PackedLinear(self.w, layout="transposed")

    def test_residual_and_out_shape(self):
        lin = ops.PackedLinear(self.w)
        x = np.ones((2, 3), np.float32)
        with pytest.raises(ValueError, match=r"residual must have the output's shape \(2, 4\), got \(2, 3\)"):
            lin(x, residual=x)
        with pytest.raises(ValueError, match=r"out must have shape \(2, 4\), got \(4, 2\)"):
            lin(x, out=np.empty((4, 2), np.float32))
        out = np.empty((2, 4), np.float32)
        with pytest.raises(ValueError, match=r"out must not share memory with residual"):
            lin(x, residual=out, out=out)


SERIAL_FALLBACK_SCRIPT = textwrap.dedent(
    """
    import numpy as np, cpuformer
    from cpuformer import _core, ops
    rng = np.random.default_rng(0)
    lin = ops.PackedLinear(rng.standard_normal((700, 300)).astype(np.float32), activation="gelu")
    x = rng.standard_normal((200, 300)).astype(np.float32)
    cpuformer.set_num_threads(1)
    want = lin(x)
    assert not _core._recently_serial()
    cpuformer.set_num_threads(2)
    first = lin(x)  # any wait of the leader counts as a stall here: a lone stall is forgotten ...
    assert not _core._recently_serial()
    second = lin(x)  # ... a second one within 100 ms makes the process serial ...
    assert _core._recently_serial()
    third = lin(x)  # ... and the next calls run on one thread
    assert _core._last_team_size() == 1
    assert all(np.array_equal(got, want) for got in (first, second, third))
    print("ok")
    """
)


def test_stalled_gemm_goes_serial_with_the_same_results():
    """CPUFORMER_LSTM_STALL_US=0 makes every wait a stall (as for the LSTM): a 2-thread GEMM then marks the process
    "recently serial" on its second stall (shared with the LSTM's step loop), and results stay bitwise those of one thread."""
    env = dict(os.environ, CPUFORMER_LSTM_STALL_US="0", PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", SERIAL_FALLBACK_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_unpickled_float32_arrays_are_accepted():
    # pickle (multiprocessing, joblib, Ray) gives arrays their own float32 dtype object: equal, not identical
    import pickle

    rng = np.random.default_rng(5)
    w, x = pickle.loads(pickle.dumps((rng.standard_normal((24, 16), dtype=np.float32),
                                      rng.standard_normal((3, 16), dtype=np.float32))))
    np.testing.assert_allclose(ops.PackedLinear(w)(x), x.astype(np.float64) @ w.T.astype(np.float64), atol=1e-5)
    with pytest.raises(TypeError, match="must have dtype float32, got >f4"):
        ops.PackedLinear(w.astype(">f4"))
