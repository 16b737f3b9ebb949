"""PackedLinear / linear against the float64 numpy reference, swept around the micro-kernel tile edges."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import reference as ref
from cpuformer import ops

EDGE_SIZES = [1, 2, 7, 15, 16, 17, 63, 65]
ODD_K = [118, 119, 120, 121, 122]
ACTIVATIONS = ["none", "gelu", "gelu_tanh", "relu"]


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("m", EDGE_SIZES)
@pytest.mark.parametrize("n", EDGE_SIZES)
def test_edge_shapes_m_n(isa, m, n):
    rng = np.random.default_rng(m * 100 + n)
    x, w, b = _rand(rng, m, 37), _rand(rng, n, 37), _rand(rng, n)
    ref.assert_close(ops.PackedLinear(w, b)(x), ref.linear(x, w, b), "linear")


@pytest.mark.parametrize("k", EDGE_SIZES + ODD_K + [255, 256, 257, 600])
def test_edge_shapes_k(isa, k):
    rng = np.random.default_rng(k)
    x, w = _rand(rng, 13, k), _rand(rng, 33, k)
    ref.assert_close(ops.PackedLinear(w)(x), ref.linear(x, w), "linear", scale=np.sqrt(k))


@pytest.mark.parametrize("k", [1023, 1024, 1025, 2100])
def test_k_blocks_with_packed_a(isa, k):
    # 100 rows x k is past the small-A-block limit, so A is packed and K is blocked: partial sums accumulate
    # in C across blocks and the fused epilogue runs only on the last one.
    rng = np.random.default_rng(k)
    x, w, b = _rand(rng, 100, k), _rand(rng, 40, k), _rand(rng, 40)
    res = _rand(rng, 100, 40)
    y = ops.PackedLinear(w, b, activation="relu")(x, residual=res)
    ref.assert_close(y, ref.linear(x, w, b, "relu", res), "linear", scale=np.sqrt(k))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fused_bias_activation_residual(isa, activation):
    rng = np.random.default_rng(3)
    x, w, b = _rand(rng, 2, 5, 70), _rand(rng, 45, 70), _rand(rng, 45)
    res = _rand(rng, 2, 5, 45)
    lin = ops.PackedLinear(w, b, activation=activation)
    ref.assert_close(lin(x, residual=res), ref.linear(x, w, b, activation, res), "linear", scale=10)
    ref.assert_close(lin(x), ref.linear(x, w, b, activation), "linear", scale=10)


def test_large_transformer_shape(isa):
    rng = np.random.default_rng(0)
    x, w, b = _rand(rng, 4096, 768), _rand(rng, 3072, 768) * 0.05, _rand(rng, 3072)
    y = ops.PackedLinear(w, b, activation="gelu")(x)
    rows = rng.choice(4096, 64, replace=False)  # the float64 reference on every row would dominate the run
    ref.assert_close(y[rows], ref.linear(x[rows], w, b, "gelu"), "linear", scale=10)


def test_in_out_layout_matches_out_in(isa):
    rng = np.random.default_rng(1)
    x, w, b = _rand(rng, 9, 50), _rand(rng, 31, 50), _rand(rng, 31)
    conv1d = ops.PackedLinear(np.ascontiguousarray(w.T), b, layout="in_out")
    np.testing.assert_array_equal(conv1d(x), ops.PackedLinear(w, b)(x))
    np.testing.assert_array_equal(conv1d.weight, w)


def test_packed_keeps_its_isa_after_switch():
    from cpuformer import _core
    rng = np.random.default_rng(2)
    x, w = _rand(rng, 4, 20), _rand(rng, 19, 20)
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
    x, w, b = _rand(rng, 3, 8), _rand(rng, 6, 8), _rand(rng, 6)
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
    x, w = _rand(rng, 10, 40), _rand(rng, 12, 20)
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
    w = _rand(rng, 256, 128)
    lin = ops.PackedLinear(w)
    xs = [_rand(rng, 33, 128) for _ in range(8)]
    results = [None] * len(xs)

    def work(i):
        for _ in range(5):
            results[i] = lin(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, y in zip(xs, results):
        ref.assert_close(y, ref.linear(x, w), "linear", scale=10)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 40), n=st.integers(1, 70), k=st.integers(0, 300), bias=st.booleans(),
       activation=st.sampled_from(ACTIVATIONS))
def test_hypothesis_shapes(m, n, k, bias, activation):
    rng = np.random.default_rng(m * 7 + n * 13 + k)
    x, w = _rand(rng, m, k), _rand(rng, n, k)
    b = _rand(rng, n) if bias else None
    y = ops.PackedLinear(w, b, activation=activation)(x)
    assert y.shape == (m, n)
    ref.assert_close(y, ref.linear(x, w, b, activation), "linear", scale=max(1.0, np.sqrt(k)))


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
