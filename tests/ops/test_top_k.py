"""PackedLinear.top_k / top_k_dot (fused scoring + top-k) against a full numpy sort."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from helpers import rand


def reference(queries, matrix, k, exclude=None):
    scores = queries.astype(np.float64) @ matrix.astype(np.float64).T
    out = []
    for r in range(len(queries)):
        banned = set() if exclude is None else set(exclude[r].tolist())
        order = [i for i in np.lexsort((np.arange(len(matrix)), -scores[r])) if i not in banned]
        out.append(order[:k])
    return out


@pytest.mark.parametrize("n,q", [(1, 1), (17, 3), (1000, 1), (5000, 2), (5000, 40), (70000, 1)])
def test_matches_full_sort(isa, n, q):
    rng = np.random.default_rng(n + q)
    matrix = rand(rng, n, 37)
    queries = rand(rng, q, 37)
    k = min(10, n)
    indices, scores = ops.PackedLinear(matrix).top_k(queries, 10)
    assert indices.shape == scores.shape == (q, k)
    for r, expected in enumerate(reference(queries, matrix, 10)):
        np.testing.assert_array_equal(indices[r], expected)
        ref.assert_close(scores[r], matrix[expected] @ queries[r], "top_k_scores")


def test_ties_come_in_ascending_index_order(isa):
    matrix = np.zeros((3000, 4), np.float32)
    matrix[::7, 0] = 1.0  # 429 equal best scores spread over every split
    indices, scores = ops.top_k_dot(np.array([[1, 0, 0, 0]], np.float32), matrix, 50)
    np.testing.assert_array_equal(indices[0], np.arange(0, 350, 7))
    assert (scores == 1.0).all()


def test_exclude_bias_and_padding():
    rng = np.random.default_rng(0)
    matrix = rand(rng, 6, 5)
    bias = rand(rng, 6)
    queries = rand(rng, 2, 5)
    exclude = np.array([[0, -1], [5, 99]])
    indices, scores = ops.PackedLinear(matrix, bias).top_k(queries, 10, exclude=exclude)
    full = queries @ matrix.T + bias
    for r in range(2):
        banned = {int(e) for e in exclude[r] if 0 <= e < 6}
        expected = [i for i in np.argsort(-full[r], kind="stable") if i not in banned]
        np.testing.assert_array_equal(indices[r, :5], expected)
        assert indices[r, 5] == -1 and scores[r, 5] == -np.inf


def test_nan_and_minus_inf_never_qualify():
    matrix = np.array([[1.0], [np.nan], [-np.inf], [2.0]], np.float32)
    indices, scores = ops.top_k_dot(np.ones((1, 1), np.float32), matrix, 4)
    np.testing.assert_array_equal(indices[0], [3, 0, -1, -1])
    np.testing.assert_array_equal(scores[0, :2], [2.0, 1.0])


def test_bad_input():
    lin = ops.PackedLinear(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"queries must have shape \(q, 3\), got \(2, 4\)"):
        lin.top_k(np.ones((2, 4), np.float32), 2)
    with pytest.raises(ValueError, match=r"k must be >= 0, got -1"):
        lin.top_k(np.ones((2, 3), np.float32), -1)
    with pytest.raises(ValueError, match=r"exclude must have shape \(2, e\), got \(3, 1\)"):
        lin.top_k(np.ones((2, 3), np.float32), 2, exclude=np.zeros((3, 1), np.int64))
    with pytest.raises(TypeError, match=r"exclude must be a numpy.ndarray of integers, got list"):
        lin.top_k(np.ones((2, 3), np.float32), 2, exclude=[[1], [2]])
    with pytest.raises(ValueError, match=r"activation 'relu'"):
        ops.PackedLinear(np.ones((4, 3), np.float32), activation="relu").top_k(np.ones((1, 3), np.float32), 1)
