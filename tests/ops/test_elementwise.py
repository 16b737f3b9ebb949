"""gelu / activation / layer_norm / softmax against float64 numpy references, on every ISA."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from helpers import given, hnp, rand, settings, st

SIZES = [1, 3, 7, 8, 15, 16, 17, 31, 33, 63, 65, 384, 1000]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(isa, n, approximate):
    x = np.linspace(-12, 12, n * 3, dtype=np.float32).reshape(3, n)
    ref.assert_close(ops.gelu(x, approximate=approximate), ref.gelu(x, approximate), "gelu")


def test_gelu_extremes(isa):
    x = np.array([-1e4, -100, -30, -9, -5, -1e-3, 0, 1e-30, 1e-3, 5, 9, 30, 100, 1e4], np.float32)
    for approximate in ["none", "tanh"]:
        y = ops.gelu(x, approximate=approximate)
        assert np.all(np.isfinite(y))
        ref.assert_close(y, ref.gelu(x, approximate), "gelu")


def test_no_subnormal_results(isa):
    # Subnormal floats cost a microcode assist per operation on Intel (a fused erf-GELU over strongly negative
    # inputs ran 10x slower): GELU, the fused GELU store and softmax never produce one, on any ISA.
    tiny = np.finfo(np.float32).tiny
    x = -np.geomspace(1e-3, 1e4, 333, dtype=np.float32).reshape(3, 111)
    lin = ops.PackedLinear(np.eye(111, dtype=np.float32), activation="gelu")
    scores = np.concatenate([np.zeros((3, 1), np.float32), x * 10], axis=1)
    for y in (ops.gelu(x), ops.gelu(x, approximate="tanh"), lin(x), ops.softmax(scores)):
        assert not np.any((y != 0) & (np.abs(y) < tiny)), y[(y != 0) & (np.abs(y) < tiny)][:5]


@pytest.mark.parametrize("name", ["none", "gelu", "gelu_tanh", "relu"])
def test_activation(isa, name):
    x = rand(np.random.default_rng(0), 5, 77, scale=4)
    ref.assert_close(ops.activation(x, name), ref.ACTIVATIONS[name](x), "gelu")


@pytest.mark.parametrize("cols", SIZES)
def test_layer_norm(isa, cols):
    rng = np.random.default_rng(cols)
    x = rand(rng, 4, 3, cols, scale=3) + 5  # offset mean checks the two-pass variance
    w, b = rand(rng, cols), rand(rng, cols)
    ref.assert_close(ops.layer_norm(x, w, b, eps=1e-12), ref.layer_norm(x, w, b, 1e-12), "layer_norm", scale=4)


def test_layer_norm_out_and_in_place(isa):
    rng = np.random.default_rng(9)
    x = rand(rng, 5, 96)
    w, b = rand(rng, 96), rand(rng, 96)
    expected = ref.layer_norm(x, w, b)
    out = np.empty_like(x)
    assert ops.layer_norm(x, w, b, out=out) is out
    ref.assert_close(out, expected, "layer_norm", scale=4)
    ops.layer_norm(x, w, b, out=x)
    ref.assert_close(x, expected, "layer_norm", scale=4)
    with pytest.raises(ValueError, match=r"out must be x itself or not overlap it"):
        big = np.zeros(6 * 96, np.float32)
        ops.layer_norm(big[:480].reshape(5, 96), w, b, out=big[96:].reshape(5, 96))
    with pytest.raises(ValueError, match=r"out must have shape \(5, 96\), got \(4, 96\)"):
        ops.layer_norm(x, w, b, out=np.empty((4, 96), np.float32))


@pytest.mark.parametrize("cols", SIZES)
def test_softmax(isa, cols):
    x = rand(np.random.default_rng(cols), 6, cols, scale=10)
    y = ops.softmax(x)
    ref.assert_close(y, ref.softmax(x), "softmax")
    ref.assert_close(y.sum(axis=-1), np.ones(6), "softmax_row_sum")


def test_softmax_masked_rows(isa):
    x = np.array([[-np.inf] * 5, [0.0, -np.inf, 1.0, -np.inf, 2.0]], np.float32)
    y = ops.softmax(x)
    np.testing.assert_array_equal(y[0], 0.0)
    ref.assert_close(y[1], ref.softmax(np.array([0.0, -np.inf, 1.0, -np.inf, 2.0])), "softmax")


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=40),
                  elements=st.floats(-50, 50, width=32)))
def test_hypothesis_rowwise_ops(x):
    ref.assert_close(ops.gelu(x), ref.gelu(x), "gelu", scale=10)
    if x.shape[-1] > 0:
        ref.assert_close(ops.softmax(x), ref.softmax(x), "softmax", scale=10)
        ones, zeros = np.ones(x.shape[-1], np.float32), np.zeros(x.shape[-1], np.float32)
        # float32 rounds the row mean by ~|x| * 2^-24 * sqrt(n); normalising divides that by sqrt(var + eps),
        # which for a (near-)constant row amplifies it up to 1/sqrt(eps) ~ 316x. Bound the error by that.
        x64 = x.astype(np.float64)
        amplify = np.abs(x64).max(axis=-1, keepdims=True) / np.sqrt(x64.var(axis=-1, keepdims=True) + 1e-5)
        bound = ref.TOLERANCE["layer_norm"][1] + 4 * 2.0**-24 * np.sqrt(x.shape[-1]) * amplify
        err = np.abs(ops.layer_norm(x, ones, zeros) - ref.layer_norm(x, ones, zeros))
        assert (err <= bound).all(), float((err - bound).max())


class TestBadInput:
    def test_layer_norm_params(self):
        x = np.ones((2, 4), np.float32)
        with pytest.raises(ValueError, match=r"weight must have shape \(4,\), got \(3,\)"):
            ops.layer_norm(x, np.ones(3, np.float32), np.ones(4, np.float32))
        with pytest.raises(TypeError, match=r"bias must have dtype float32, got float64"):
            ops.layer_norm(x, np.ones(4, np.float32), np.ones(4))
        with pytest.raises(ValueError, match=r"features >= 1"):
            ops.layer_norm(np.ones((2, 0), np.float32), np.ones(0, np.float32), np.ones(0, np.float32))
        with pytest.raises(ValueError, match=r"eps must be >= 0"):
            ops.layer_norm(x, np.ones(4, np.float32), np.ones(4, np.float32), eps=-1.0)

    def test_gelu_args(self):
        with pytest.raises(ValueError, match=r"approximate must be 'none' \(exact erf\) or 'tanh', got 'fast'"):
            ops.gelu(np.ones(3, np.float32), approximate="fast")
        with pytest.raises(TypeError, match=r"x must have dtype float32, got int64"):
            ops.gelu(np.ones(3, np.int64))

    def test_softmax_scalar(self):
        with pytest.raises(ValueError, match=r"at least one axis"):
            ops.softmax(np.ones((), np.float32))
        with pytest.raises(TypeError, match=r"got numpy.float32"):
            ops.softmax(np.float32(1.0))
