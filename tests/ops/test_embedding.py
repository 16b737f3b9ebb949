"""embedding / embedding_bag against numpy indexing and pooling."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from helpers import rand


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16])
def test_embedding_any_shape(isa, dtype):
    rng = np.random.default_rng(0)
    table = rand(rng, 50, 19)
    ids = rng.integers(0, 50, (3, 4)).astype(dtype)
    out = ops.embedding(ids, table)
    assert out.shape == (3, 4, 19)
    np.testing.assert_array_equal(out, table[ids])


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag(isa, mode):
    rng = np.random.default_rng(1)
    table = rand(rng, 30, 37)
    ids = rng.integers(0, 30, 20)
    offsets = np.array([0, 3, 3, 10, 19])  # includes an empty bag
    out = ops.embedding_bag(ids, offsets, table, mode=mode)
    ref.assert_close(out, ref.embedding_bag(ids, offsets, table, mode), "embedding_bag")
    np.testing.assert_array_equal(out[1], 0.0)


def test_empty_inputs():
    table = np.ones((5, 4), np.float32)
    assert ops.embedding(np.zeros((0,), np.int64), table).shape == (0, 4)
    assert ops.embedding_bag(np.zeros(0, np.int64), np.zeros(0, np.int64), table).shape == (0, 4)


class TestBadInput:
    table = np.ones((5, 4), np.float32)

    def test_out_of_range(self):
        with pytest.raises(ValueError, match=r"ids contains 5 at flat index 2, out of range for a table with 5 rows"):
            ops.embedding(np.array([0, 1, 5]), self.table)
        with pytest.raises(ValueError, match=r"ids contains -1"):
            ops.embedding(np.array([-1]), self.table)

    def test_wrong_dtypes(self):
        with pytest.raises(TypeError, match=r"ids must have an integer dtype, got float32"):
            ops.embedding(np.array([0.0], np.float32), self.table)
        with pytest.raises(TypeError, match=r"table must have dtype float32"):
            ops.embedding(np.array([0]), self.table.astype(np.float64))

    def test_bag_offsets(self):
        ids = np.array([0, 1, 2])
        with pytest.raises(ValueError, match=r"offsets\[0\] must be 0"):
            ops.embedding_bag(ids, np.array([1, 2]), self.table)
        with pytest.raises(ValueError, match=r"offsets must be non-decreasing; offsets\[2\] = 1 < offsets\[1\] = 2"):
            ops.embedding_bag(ids, np.array([0, 2, 1]), self.table)
        with pytest.raises(ValueError, match=r"offsets contains 4"):
            ops.embedding_bag(ids, np.array([0, 4]), self.table)
        with pytest.raises(ValueError, match=r"mode must be 'sum' or 'mean', got 'max'"):
            ops.embedding_bag(ids, np.array([0]), self.table, mode="max")
