"""Plain numpy references for every op, written for clarity rather than speed, computed in float64."""
from __future__ import annotations

import math

import numpy as np

# One tolerance table per op (float32 results vs float64 references): (rtol, atol).
TOLERANCE = {
    "linear": (1e-5, 1e-5),
    "gelu": (1e-5, 1e-6),
    "relu": (0.0, 0.0),
    "layer_norm": (1e-5, 1e-5),
    "softmax": (1e-5, 1e-7),
    "embedding": (0.0, 0.0),
    "embedding_bag": (1e-6, 1e-6),
    "attention": (1e-5, 1e-5),
    "lstm": (1e-5, 1e-5),
}


def assert_close(actual, expected, op: str, scale: float = 1.0):
    """Compare against the reference with the op's tolerance; `scale` widens atol for long reductions."""
    rtol, atol = TOLERANCE[op]
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol * scale)


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
