"""The threading policy seen from Python: bounded thread counts, the per-thread num_threads() block, threadpoolctl,
the budget shared by concurrent callers, small work staying serial, and forked children that keep working."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import cpuformer
from cpuformer import _core, ops
from helpers import num_threads as process_threads, rand, run_in_threads


@pytest.fixture
def rng():
    return np.random.default_rng(11)


@pytest.fixture
def no_serial_memory():
    """Team sizes as the policy grants them: a stall on this busy test machine must not turn the next calls serial."""
    _core._set_serial_memory(False)
    yield
    _core._set_serial_memory(True)


# ---- bounds ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, 100_000, 2**40])
def test_set_num_threads_rejects_counts_out_of_range(bad):
    before = cpuformer.get_num_threads()
    with pytest.raises(ValueError, match=rf"between 1 and {_core._max_num_threads()}.*got {bad}"):
        cpuformer.set_num_threads(bad)
    assert cpuformer.get_num_threads() == before


@pytest.mark.parametrize("bad", [True, 2.0, "2", None])
def test_set_num_threads_rejects_non_ints(bad):
    with pytest.raises(TypeError, match="must be an int"):
        cpuformer.set_num_threads(bad)
    with pytest.raises(TypeError, match="must be an int"):
        with cpuformer.num_threads(bad):
            pass


def test_the_largest_count_allowed_runs(rng):
    w, x = rand(rng, 64, 64), rand(rng, 8, 64)
    with process_threads(_core._max_num_threads()):
        np.testing.assert_array_equal(ops.linear(x, w), ops.PackedLinear(w)(x))


@pytest.mark.parametrize("value, expected_warning", [("100000", True), ("3", False)])
def test_omp_num_threads_beyond_the_limit_is_clamped_with_a_warning(value, expected_warning):
    code = ("import warnings, numpy as np\nwith warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n    import cpuformer\n"
            "x = np.ones((64, 512), np.float32)\n"
            "y = cpuformer.ops.PackedLinear(np.ones((512, 512), np.float32))(x)\n"
            "print(cpuformer.get_num_threads(), cpuformer._core._max_num_threads(), float(y[0, 0]), "
            "[str(m.message) for m in w])")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, OMP_NUM_THREADS=value), check=True,
                         capture_output=True, text=True, timeout=120).stdout
    threads, limit, y00, messages = out.split(" ", 3)
    assert float(y00) == 512.0
    if expected_warning:
        assert int(threads) == int(limit)
        assert "OMP_NUM_THREADS=100000 is more than cpuformer allows" in messages
    else:
        assert int(threads) == 3 and "OMP_NUM_THREADS" not in messages


# ---- num_threads(n): this thread only, nested, restored ------------------------------------------------------------

def test_num_threads_block_is_per_thread_and_nests():
    with process_threads(2):
        seen = {}

        def other():
            seen["other"] = cpuformer.get_num_threads()

        with cpuformer.num_threads(1):
            assert cpuformer.get_num_threads() == 1
            t = threading.Thread(target=other)
            t.start()
            t.join()
            with cpuformer.num_threads(3):
                assert cpuformer.get_num_threads() == 3
            assert cpuformer.get_num_threads() == 1
        assert seen["other"] == 2
        assert cpuformer.get_num_threads() == 2


def test_num_threads_block_restores_on_error_and_decorates():
    with process_threads(2):
        with pytest.raises(RuntimeError):
            with cpuformer.num_threads(1):
                raise RuntimeError
        assert cpuformer.get_num_threads() == 2

        @cpuformer.num_threads(1)
        def inside():
            return cpuformer.get_num_threads()

        assert inside() == 1 and cpuformer.get_num_threads() == 2


def test_ops_use_the_count_of_their_block(rng, no_serial_memory):
    w, x = rand(rng, 768, 768), rand(rng, 64, 768)
    layer = ops.PackedLinear(w)
    with process_threads(2):
        expected = layer(x)
        with cpuformer.num_threads(1):
            np.testing.assert_array_equal(layer(x), expected)
            assert _core._last_team_size() == 1
        layer(x)
        assert _core._last_team_size() == 2


@pytest.mark.parametrize("op", ["linear", "softmax", "layer_norm", "gelu"])
def test_tiny_ops_do_not_start_a_team(rng, op):
    x = rand(rng, 2, 16)
    calls = {
        "linear": lambda: ops.PackedLinear(rand(rng, 16, 16))(x),
        "softmax": lambda: ops.softmax(x),
        "layer_norm": lambda: ops.layer_norm(x, np.ones(16, np.float32), np.zeros(16, np.float32)),
        "gelu": lambda: ops.gelu(x),
    }
    with process_threads(2):
        calls[op]()
        assert _core._last_team_size() == 1


# ---- threadpoolctl -------------------------------------------------------------------------------------------------

def test_threadpoolctl_sees_and_limits_cpuformer():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed (pip install cpuformer[test])")
    with process_threads(2):
        ours = [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "cpuformer"]
        assert len(ours) == 1
        assert ours[0]["num_threads"] == 2 and ours[0]["user_api"] == "openmp"
        assert ours[0]["version"] == cpuformer.__version__
        with threadpoolctl.threadpool_limits(1):
            assert cpuformer.get_num_threads() == 1
        assert cpuformer.get_num_threads() == 2
        with threadpoolctl.threadpool_limits(limits={"openmp": 1}):
            assert cpuformer.get_num_threads() == 1
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            assert cpuformer.get_num_threads() == 2
        controller = threadpoolctl.ThreadpoolController().select(internal_api="cpuformer")
        with controller.limit(limits=1):
            assert cpuformer.get_num_threads() == 1
        assert cpuformer.get_num_threads() == 2


# ---- budget shared by concurrent callers ---------------------------------------------------------------------------

def test_a_call_gets_what_concurrent_calls_left(rng, no_serial_memory):
    w, x = rand(rng, 768, 768), rand(rng, 64, 768)
    layer = ops.PackedLinear(w)
    with process_threads(2):
        expected = layer(x)
        held = _core._HeldThreads(2)  # as another Python thread's running 2-thread op would
        try:
            assert held.threads == 2 and _core._threads_in_use() >= 2
            np.testing.assert_array_equal(layer(x), expected)
            assert _core._last_team_size() == 1
        finally:
            held.release()
        assert _core._threads_in_use() == 0
        held = _core._HeldThreads(1)
        try:
            layer(x)
            assert _core._last_team_size() == 1
        finally:
            held.release()


def test_concurrent_encodes_equal_one_at_a_time_exactly(default_model_folder):
    encoder = cpuformer.SentenceEncoder.from_pretrained(default_model_folder)
    texts = [[f"sentence {i} about {topic}" * (1 + i % 3) for i in range(12)]
             for topic in ("cats", "markets", "rivers", "chess")]
    with process_threads(2):
        alone = [encoder.encode(t) for t in texts]
        together = run_in_threads(encoder.encode, [(t,) for t in texts])
    assert _core._threads_in_use() == 0
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)


def test_concurrent_decode_attention_equals_one_at_a_time_exactly(rng):
    # Decode-shaped attention splits keys by the thread count: the split must follow the settings, never the
    # team a call happens to get beside other callers.
    q, k, v = rand(rng, 1, 1, 4 * 64), rand(rng, 1, 700, 4 * 64), rand(rng, 1, 700, 4 * 64)
    with process_threads(2):
        alone = ops.multi_head_attention(q, k, v, 4)
        held = _core._HeldThreads(2)
        try:
            np.testing.assert_array_equal(ops.multi_head_attention(q, k, v, 4), alone)
        finally:
            held.release()


# ---- fork ----------------------------------------------------------------------------------------------------------

def _child_linear(args):
    w, x = args
    return ops.PackedLinear(w)(x), cpuformer.get_num_threads()


def _child_lstm(seed):
    lstm = cpuformer.nn.LSTM(24, 48, num_layers=2, seed=seed)
    x = np.random.default_rng(seed).standard_normal((30, 4, 24)).astype(np.float32)
    return lstm.forward(x)[0]


def test_multiprocessing_fork_pool_after_threaded_ops(rng):
    w, x = rand(rng, 512, 512), rand(rng, 64, 512)
    with process_threads(2):
        expected = ops.PackedLinear(w)(x)  # the parent's OpenMP team has started
        lstm_expected = _child_lstm(3)
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2) as pool:
            results = pool.map_async(_child_linear, [(w, x)] * 3).get(timeout=120)
            lstm_results = pool.map_async(_child_lstm, [3, 3]).get(timeout=120)
    for y, threads in results:
        np.testing.assert_array_equal(y, expected)
        assert threads == 1  # libgomp cannot start threads again in a forked child
    for y in lstm_results:
        np.testing.assert_array_equal(y, lstm_expected)


def _child_encode(folder, texts, queue):
    encoder = cpuformer.SentenceEncoder.from_pretrained(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cpuformer.set_num_threads(2)
    queue.put((encoder.encode(texts), [str(w.message) for w in caught]))


def test_forked_child_encodes_after_the_parent_did(default_model_folder):
    texts = ["a forked worker", "embeds sentences after its parent used threads"]
    encoder = cpuformer.SentenceEncoder.from_pretrained(default_model_folder)
    with process_threads(2):
        expected = encoder.encode(texts)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_encode, args=(default_model_folder, texts, queue))
        child.start()
        try:
            got, messages = queue.get(timeout=120)
        finally:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    assert child.exitcode == 0
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert any("forked after cpuformer's threads had started" in m for m in messages)


def test_fork_before_any_team_keeps_threads_in_the_child():
    code = """
import os, numpy as np, cpuformer
from cpuformer import _core
cpuformer.set_num_threads(2)
_core._set_serial_memory(False)
pid = os.fork()
if pid == 0:
    y = cpuformer.ops.PackedLinear(np.ones((512, 512), np.float32))(np.ones((64, 512), np.float32))
    ok = float(y[0, 0]) == 512.0 and not _core._forked_serial() and _core._last_team_size() == 2
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "0"
