"""The pooled numpy allocator (cpuformer.array_pool): which arrays it serves, that it reuses and bounds what it keeps,
that it is per thread, survives fork, and that model outputs do not change under it."""
from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from cpuformer import _core
from cpuformer.array_pool import pooled, pooled_arrays

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import get_handler_name

MIB = 1 << 20


@pytest.fixture(autouse=True)
def fresh_pool():
    limit = _core._array_pool_stats()["limit_bytes"]
    _core._array_pool_clear()
    yield
    _core._set_array_pool_limit(limit)


def test_arrays_made_inside_use_the_pool_and_only_those():
    with pooled_arrays():
        inside = np.empty(2 * MIB, np.uint8)
    outside = np.empty(2 * MIB, np.uint8)
    assert get_handler_name(inside) == "cpuformer_array_pool"
    assert get_handler_name(outside) != "cpuformer_array_pool"


def test_a_freed_block_is_reused_by_the_next_array_of_that_size():
    before = _core._array_pool_stats()
    with pooled_arrays():
        a = np.empty(3 * MIB, np.uint8)
        address = a.ctypes.data
        del a
        assert _core._array_pool_stats()["cached_bytes"] == 3 * MIB
        b = np.ones(3 * MIB, np.uint8)  # same size: the same block, written afresh
        assert b.ctypes.data == address and b.sum() == 3 * MIB
        small = np.empty(MIB // 2, np.uint8)  # below 1 MiB: plain malloc, never cached
        del small
    after = _core._array_pool_stats()
    assert after["hits"] - before["hits"] == 1
    assert after["cached_bytes"] == 0


def test_zeros_are_zeros_after_reuse():
    with pooled_arrays():
        a = np.full(MIB, 7, np.float32)
        del a
        assert not np.zeros(MIB, np.float32).any()
        b = np.empty(MIB, np.float32)  # takes the freed block back: its old contents are allowed, as np.empty's
        assert b.shape == (MIB,)


def test_what_it_keeps_is_bounded():
    _core._set_array_pool_limit(10 * MIB)
    with pooled_arrays():
        arrays = [np.empty((i + 2) * MIB, np.uint8) for i in range(6)]  # 2..7 MiB, 27 MiB in all
    del arrays
    stats = _core._array_pool_stats()
    assert 0 < stats["cached_bytes"] <= 10 * MIB
    with pooled_arrays():
        big = np.empty(11 * MIB, np.uint8)  # larger than the limit: freed at once, the cache unchanged
    del big
    assert _core._array_pool_stats()["cached_bytes"] == stats["cached_bytes"]
    _core._set_array_pool_limit(0)  # 0 keeps nothing
    with pooled_arrays():
        np.empty(4 * MIB, np.uint8)
    assert _core._array_pool_stats()["cached_bytes"] == 0


def test_the_choice_is_per_thread():
    seen = {}

    def other():
        seen["name"] = get_handler_name(np.empty(2 * MIB, np.uint8))

    with pooled_arrays():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert get_handler_name(np.empty(2 * MIB, np.uint8)) == "cpuformer_array_pool"
    assert seen["name"] != "cpuformer_array_pool"


def test_nested_blocks_restore_the_previous_allocator():
    with pooled_arrays():
        with pooled_arrays():
            pass
        assert get_handler_name(np.empty(2 * MIB, np.uint8)) == "cpuformer_array_pool"
    assert get_handler_name(np.empty(2 * MIB, np.uint8)) != "cpuformer_array_pool"
    with pytest.raises(KeyError):
        with pooled_arrays():
            raise KeyError("restored on error too")
    assert get_handler_name(np.empty(2 * MIB, np.uint8)) != "cpuformer_array_pool"


@pooled
def _fill(n):
    return np.full(n, 3.0, np.float32)


def _child(queue):
    with pooled_arrays():
        a = np.full(4 * MIB, 2, np.uint8)
        del a
        queue.put(int(np.full(4 * MIB, 1, np.uint8).sum()))


def test_a_forked_child_allocates_from_the_pool():
    with pooled_arrays():
        kept = np.empty(4 * MIB, np.uint8)
        del kept  # the child inherits a pool holding this block
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue,))
    proc.start()
    try:
        assert queue.get(timeout=60) == 4 * MIB
    finally:
        proc.join(60)
    assert proc.exitcode == 0
    assert get_handler_name(_fill(MIB)) == "cpuformer_array_pool"


def test_encoder_outputs_are_the_same_with_and_without_the_pool(minilm):
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, (8, 128))
    mask = np.ones_like(ids)
    mask[3, 70:] = 0
    first = minilm(ids, mask).last_hidden_state
    assert _core._array_pool_stats()["cached_blocks"] > 0  # the forward pass left blocks for the next
    second = minilm(ids, mask).last_hidden_state  # runs on reused blocks
    _core._set_array_pool_limit(0)
    third = minilm(ids, mask).last_hidden_state  # nothing reused
    assert np.array_equal(first, second) and np.array_equal(first, third)


@pytest.fixture(scope="module")
def minilm():
    from cpuformer.default_model import default_model_path
    from cpuformer.models import BertModel

    return BertModel.from_pretrained(default_model_path())
