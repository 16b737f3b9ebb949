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


def nan_first_order(scores):
    """torch.topk's descending order: NaN first, then +inf ... -inf; ties (NaNs too) in ascending index."""
    nan = np.isnan(scores)
    return np.lexsort((np.arange(len(scores)), -np.where(nan, 0, scores), ~nan))


def special_scores(rng, n):
    """n distinct finite scores with NaN, +inf and -inf (each several times) at random places."""
    scores = rng.permutation(np.arange(n, dtype=np.float32) - n / 2)
    places = rng.choice(n, size=min(n, 9), replace=False)
    scores[places] = np.array([np.nan, np.inf, -np.inf] * 3, np.float32)[: len(places)]
    return scores


# Scaling by a power of two keeps every score exact (NaN, +-inf included) and -1 reverses the order, so each query
# row of one [n, 1] matrix sees its own exactly known scores.
SCALES = np.array([[1.0], [-1.0], [2.0], [0.5]], np.float32)


@pytest.mark.parametrize("n,k", [(1, 1), (9, 9), (40, 5), (40, 40), (5000, 12), (70000, 3), (70000, 20)])
def test_nan_and_infinities_rank_as_torch_orders_them(isa, n, k):
    """Issue 16: NaN in, NaN out. NaN ranks above +inf, -inf is a score (it used to be dropped, as NaN was)."""
    rng = np.random.default_rng(n * 100 + k)
    column = special_scores(rng, n)
    for queries in (SCALES, SCALES[:1]):  # query blocks, and column splits (one query)
        indices, scores = ops.top_k_dot(queries, column[:, None], k)
        for r, scale in enumerate(queries[:, 0]):
            expected = nan_first_order(column * scale)[:k]
            np.testing.assert_array_equal(indices[r], expected)
            np.testing.assert_array_equal(scores[r], column[expected] * scale)  # NaN where expected: equal_nan


def test_all_nan_rows_and_exclude(isa):
    column = np.full(3000, np.nan, np.float32)
    column[[5, 2999]] = [np.inf, 1.0]
    indices, scores = ops.top_k_dot(np.ones((1, 1), np.float32), column[:, None], 4,
                                    exclude=np.array([[0, 2]]))
    np.testing.assert_array_equal(indices[0], [1, 3, 4, 6])
    assert np.isnan(scores).all()
    indices, scores = ops.top_k_dot(np.ones((1, 1), np.float32), column[:3, None], 3, exclude=np.array([[1, 2]]))
    np.testing.assert_array_equal(indices[0], [0, -1, -1])
    assert np.isnan(scores[0, 0]) and (scores[0, 1:] == -np.inf).all()


def test_minus_inf_is_returned_and_padding_needs_exclude():
    matrix = np.array([[1.0], [np.nan], [-np.inf], [2.0]], np.float32)
    indices, scores = ops.top_k_dot(np.ones((1, 1), np.float32), matrix, 4)
    np.testing.assert_array_equal(indices[0], [1, 3, 0, 2])
    np.testing.assert_array_equal(scores[0], [np.nan, 2.0, 1.0, -np.inf])
    indices, scores = ops.top_k_dot(np.ones((1, 1), np.float32), matrix, 4, exclude=np.array([[1, 3]]))
    np.testing.assert_array_equal(indices[0], [0, 2, -1, -1])
    np.testing.assert_array_equal(scores[0], [1.0, -np.inf, -np.inf, -np.inf])


@pytest.fixture(scope="module")
def torch_top_k(tmp_path_factory):
    from make_top_k_reference import make_reference

    rng = np.random.default_rng(16)
    cases = {f"n{n}": (np.stack([special_scores(rng, n) for _ in range(3)]), k)
             for n, k in [(7, 7), (300, 10), (5000, 9)]}
    outputs = make_reference(tmp_path_factory.mktemp("top_k_torch"), {name: s for name, (s, _) in cases.items()},
                             {name: k for name, (_, k) in cases.items()})
    return cases, outputs


def test_matches_torch_topk_with_nan_and_infinities(isa, torch_top_k):
    cases, outputs = torch_top_k
    for name, (scores, k) in cases.items():
        values_t, indices_t = outputs[f"{name}.values"], outputs[f"{name}.indices"]
        for r, row in enumerate(scores):
            # one row at a time as a [n, 1] column: the query 1.0 makes the scores exactly `row`
            indices, values = ops.top_k_dot(np.ones((1, 1), np.float32), row[:, None], k)
            np.testing.assert_array_equal(values[0], values_t[r])
            # torch does not promise an order among equal values (NaNs); its indices point at the same values
            np.testing.assert_array_equal(row[indices_t[r]], values[0])
            same = ~np.isnan(values[0]) & np.isfinite(values[0])
            np.testing.assert_array_equal(indices[0][same], indices_t[r][same])


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
