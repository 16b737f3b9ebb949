"""rms_norm, rotary_embedding and silu_mul (the Llama-family row ops) against float64 numpy references, per ISA."""
from __future__ import annotations

import re

import numpy as np
import pytest

from cpuformer import ops
from helpers import rand

# One tolerance per op (rtol, atol): fp32 row ops against float64.
RMS_NORM_TOL = (1e-5, 1e-6)
ROPE_TOL = (1e-6, 1e-6)
SILU_MUL_TOL = (1e-5, 1e-6)


def rms_norm_reference(x, w, eps):
    x64 = x.astype(np.float64)
    return x64 / np.sqrt((x64 ** 2).mean(axis=-1, keepdims=True) + eps) * w.astype(np.float64)


def rope_reference(x, positions, cos, sin, head_dim):
    """Hugging Face's q * cos + rotate_half(q) * sin with cos/sin = cat(table, table), in float64."""
    x64 = x.astype(np.float64).reshape(x.shape[:-1] + (-1, head_dim))
    c = np.concatenate([cos, cos], axis=-1).astype(np.float64)[positions][..., None, :]
    s = np.concatenate([sin, sin], axis=-1).astype(np.float64)[positions][..., None, :]
    half = head_dim // 2
    rotated = np.concatenate([-x64[..., half:], x64[..., :half]], axis=-1)
    return (x64 * c + rotated * s).reshape(x.shape)


def tables(positions: int, head_dim: int, theta: float = 10000.0):
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
    angles = np.arange(positions)[:, None] * inv_freq[None]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


@pytest.mark.parametrize("cols", [1, 7, 16, 33, 96, 4097])
def test_rms_norm_matches_reference(isa, cols):
    rng = np.random.default_rng(cols)
    x, w = rand(rng, 5, 3, cols, scale=3.0), rand(rng, cols)
    for eps in (1e-6, 1e-5, 0.5):
        np.testing.assert_allclose(ops.rms_norm(x, w, eps), rms_norm_reference(x, w, eps), *RMS_NORM_TOL)


def test_rms_norm_in_place_and_out(isa):
    rng = np.random.default_rng(1)
    x, w = rand(rng, 4, 40), rand(rng, 40)
    expected = ops.rms_norm(x, w, 1e-5)
    out = np.empty_like(x)
    assert ops.rms_norm(x, w, 1e-5, out=out) is out
    np.testing.assert_array_equal(out, expected)
    ops.rms_norm(x, w, 1e-5, out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("head_dim", [2, 16, 34, 64, 128])
def test_rotary_embedding_matches_reference(isa, head_dim):
    rng = np.random.default_rng(head_dim)
    cos, sin = tables(300, head_dim)
    heads, tokens = 3, 37
    x = rand(rng, tokens, heads * head_dim)
    positions = rng.integers(0, 300, tokens)
    expected = rope_reference(x, positions, cos, sin, head_dim)
    ops.rotary_embedding(x, positions, cos, sin, head_dim)
    np.testing.assert_allclose(x, expected, *ROPE_TOL)


def test_rotary_embedding_rotates_q_and_k_of_a_fused_projection_in_place(isa):
    # [B, T, (H + 2 KVH) * D]: Q and K rotated in one call on the column slice; V untouched, no copy.
    rng = np.random.default_rng(2)
    heads, kv_heads, d, b, t = 6, 2, 16, 2, 9
    qkv = rand(rng, b, t, (heads + 2 * kv_heads) * d)
    before = qkv.copy()
    cos, sin = tables(64, d)
    positions = np.stack([np.arange(t), np.arange(t) + 20])
    ops.rotary_embedding(qkv[..., :(heads + kv_heads) * d], positions, cos, sin, d)
    qk = before[..., :(heads + kv_heads) * d]
    np.testing.assert_allclose(qkv[..., :(heads + kv_heads) * d], rope_reference(qk, positions, cos, sin, d), *ROPE_TOL)
    np.testing.assert_array_equal(qkv[..., (heads + kv_heads) * d:], before[..., (heads + kv_heads) * d:])


def test_rotary_position_zero_is_identity(isa):
    rng = np.random.default_rng(3)
    cos, sin = tables(4, 8)
    x = rand(rng, 5, 16)
    before = x.copy()
    ops.rotary_embedding(x, np.zeros(5, np.int64), cos, sin, 8)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("cols", [1, 5, 16, 100, 1031])
def test_silu_mul_matches_reference(isa, cols):
    rng = np.random.default_rng(cols)
    gate_up = rand(rng, 3, 4, 2 * cols, scale=4.0)
    gate_up[0, 0, 0] = -100.0  # far negative: silu -> -0, not NaN
    g, u = gate_up[..., :cols].astype(np.float64), gate_up[..., cols:].astype(np.float64)
    expected = g / (1.0 + np.exp(-g)) * u
    out = ops.silu_mul(gate_up)
    assert out.shape == (3, 4, cols)
    np.testing.assert_allclose(out, expected, *SILU_MUL_TOL)


def test_silu_mul_out_argument(isa):
    rng = np.random.default_rng(4)
    gate_up = rand(rng, 6, 20)
    out = np.empty((6, 10), np.float32)
    assert ops.silu_mul(gate_up, out=out) is out
    np.testing.assert_array_equal(out, ops.silu_mul(gate_up))


def _x():
    return np.zeros((4, 16), np.float32)


@pytest.mark.parametrize("call, error, message", [
    (lambda: ops.rms_norm(_x(), np.ones(15, np.float32)), ValueError, "weight must have shape (16,)"),
    (lambda: ops.rms_norm(_x(), np.ones(16, np.float32), -1.0), ValueError, "eps must be a finite number >= 0"),
    (lambda: ops.rms_norm(_x().astype(np.float64), np.ones(16, np.float32)), TypeError, "x must have dtype float32"),
    (lambda: ops.rotary_embedding(_x(), np.zeros(4, np.int64), *tables(8, 8), 7), ValueError, "head_dim must be even"),
    (lambda: ops.rotary_embedding(_x(), np.zeros(4, np.int64), *tables(8, 6), 6), ValueError,
     "must be a multiple of head_dim=6"),
    (lambda: ops.rotary_embedding(_x(), np.zeros(3, np.int64), *tables(8, 8), 8), ValueError,
     "positions must have shape (4,)"),
    (lambda: ops.rotary_embedding(_x(), np.full(4, 8), *tables(8, 8), 8), ValueError,
     "positions must be in [0, 8) (rows of cos / sin), got 8 at index 0"),
    (lambda: ops.rotary_embedding(_x(), np.zeros(4, np.int64), *tables(8, 16), 8), ValueError,
     "cos must have shape (positions, head_dim / 2 = 4)"),
    (lambda: ops.rotary_embedding(_x()[:, ::2], np.zeros(4, np.int64), *tables(8, 8), 8), ValueError,
     "contiguous last axis"),
    (lambda: ops.rotary_embedding(_x().astype(np.float64), np.zeros(4, np.int64), *tables(8, 8), 8), TypeError,
     "x must have dtype float32"),
    (lambda: ops.rotary_embedding(np.zeros(16, np.float32), np.zeros(1, np.int64), *tables(8, 8), 8), ValueError,
     "x must have shape (tokens, heads * head_dim)"),
    (lambda: ops.silu_mul(np.zeros((2, 5), np.float32)), ValueError, "gate_up must have shape (..., 2 * features)"),
    (lambda: ops.silu_mul(_x(), out=np.zeros((4, 7), np.float32)), ValueError, "out must have shape (4, 8)"),
])
def test_bad_inputs_name_the_problem(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_read_only_x_is_refused():
    x = _x()
    x.flags.writeable = False
    with pytest.raises(ValueError, match="x must be writable"):
        ops.rotary_embedding(x, np.zeros(4, np.int64), *tables(8, 8), 8)
