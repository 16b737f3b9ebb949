"""ops.lstm_cell (and through it the fused gate kernel) against the float64 numpy reference, on every ISA."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from helpers import rand


def _cell_args(rng, batch, input_size, hidden, scale=0.3, bias=True):
    x, h, c = rand(rng, batch, input_size), rand(rng, batch, hidden), rand(rng, batch, hidden)
    w_ih, w_hh = rand(rng, 4 * hidden, input_size, scale=scale), rand(rng, 4 * hidden, hidden, scale=scale)
    b_ih = rand(rng, 4 * hidden) if bias else None
    b_hh = rand(rng, 4 * hidden) if bias else None
    return x, h, c, w_ih, w_hh, b_ih, b_hh


def _check(args):
    h_new, c_new = ops.lstm_cell(*args)
    h_ref, c_ref = ref.lstm_cell(*args)
    assert h_new.dtype == np.float32 and c_new.dtype == np.float32
    ref.assert_close(h_new, h_ref, "lstm")
    ref.assert_close(c_new, c_ref, "lstm")


# Hidden sizes around the vector width (4, 8, 16 lanes) so the gate kernel's full and tail paths both run.
@pytest.mark.parametrize("hidden", [1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 53])
def test_hidden_sizes(isa, hidden):
    _check(_cell_args(np.random.default_rng(hidden), 3, 37, hidden))


@pytest.mark.parametrize("batch", [1, 2, 6, 7, 13])
@pytest.mark.parametrize("input_size", [1, 16, 37])
def test_batch_and_input_sizes(isa, batch, input_size):
    _check(_cell_args(np.random.default_rng(batch * 100 + input_size), batch, input_size, 20))


@pytest.mark.parametrize("which", ["none", "ih_only", "hh_only"])
def test_optional_biases(isa, which):
    x, h, c, w_ih, w_hh, b_ih, b_hh = _cell_args(np.random.default_rng(5), 4, 11, 19)
    b_ih = None if which in ("none", "hh_only") else b_ih
    b_hh = None if which in ("none", "ih_only") else b_hh
    _check((x, h, c, w_ih, w_hh, b_ih, b_hh))


def test_saturated_gates_stay_finite(isa):
    # Pre-activations of +-100s drive every sigmoid / tanh into saturation; results must stay finite and exact.
    x, h, c, w_ih, w_hh, b_ih, b_hh = _cell_args(np.random.default_rng(6), 5, 24, 40, scale=30.0)
    h_new, c_new = ops.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    assert np.isfinite(h_new).all() and np.isfinite(c_new).all()
    h_ref, c_ref = ref.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    ref.assert_close(h_new, h_ref, "lstm")
    ref.assert_close(c_new, c_ref, "lstm")


def test_matches_sequence_of_one_step():
    """A one-step, one-layer nn.LSTM is the same computation, up to summation order of the biases."""
    from cpuformer.nn import LSTM

    args = _cell_args(np.random.default_rng(7), 3, 10, 12)
    x, h, c, w_ih, w_hh, b_ih, b_hh = args
    lstm = LSTM(10, 12)
    lstm.load_state_dict({"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh})
    out, (h_n, c_n) = lstm(x[None], (h[None], c[None]))
    h_new, c_new = ops.lstm_cell(*args)
    ref.assert_close(h_n[0], h_new, "lstm_paths")
    ref.assert_close(c_n[0], c_new, "lstm_paths")
    np.testing.assert_array_equal(out[0], h_n[0])


def test_empty_batch():
    x, h, c, w_ih, w_hh, b_ih, b_hh = _cell_args(np.random.default_rng(8), 0, 6, 5)
    h_new, c_new = ops.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    assert h_new.shape == (0, 5) and c_new.shape == (0, 5)


def test_non_contiguous_inputs_are_copied():
    x, h, c, w_ih, w_hh, b_ih, b_hh = _cell_args(np.random.default_rng(9), 4, 8, 6)
    x_strided = np.asfortranarray(x)
    h_new, c_new = ops.lstm_cell(x_strided, h, c, w_ih, w_hh, b_ih, b_hh)
    np.testing.assert_array_equal(h_new, ops.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)[0])


@pytest.fixture
def good():
    return _cell_args(np.random.default_rng(10), 2, 6, 5)


def _with(good, **changes):
    names = ["x", "h", "c", "w_ih", "w_hh", "b_ih", "b_hh"]
    args = dict(zip(names, good))
    args.update(changes)
    return args


@pytest.mark.parametrize("name", ["x", "h", "c", "w_ih", "w_hh", "b_ih"])
def test_wrong_dtype_is_type_error(good, name):
    args = _with(good)
    args[name] = args[name].astype(np.float64)
    with pytest.raises(TypeError, match=f"{name} must have dtype float32, got float64"):
        ops.lstm_cell(**args)


def test_list_input_is_type_error(good):
    with pytest.raises(TypeError, match="x must be a numpy.ndarray of dtype float32, got list"):
        ops.lstm_cell(**_with(good, x=[[0.0] * 6] * 2))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x": np.zeros((2, 7), np.float32)}, r"x must have shape \(batch, 6\), got \(2, 7\)"),
        ({"x": np.zeros((2, 1, 6), np.float32)}, r"x must have shape \(batch, 6\), got \(2, 1, 6\)"),
        ({"h": np.zeros((3, 5), np.float32)}, r"h must have shape \(2, 5\), got \(3, 5\)"),
        ({"c": np.zeros((2, 4), np.float32)}, r"c must have shape \(2, 5\), got \(2, 4\)"),
        ({"w_hh": np.zeros((20, 4), np.float32)}, r"w_hh must have shape \(4 \* hidden, hidden\) with hidden > 0, got \(20, 4\)"),
        ({"w_hh": np.zeros((0, 0), np.float32)}, r"w_hh must have shape \(4 \* hidden, hidden\) with hidden > 0, got \(0, 0\)"),
        ({"w_ih": np.zeros((16, 6), np.float32)}, r"w_ih must have shape \(20, input_size\) to match w_hh \(20, 5\), got \(16, 6\)"),
        ({"b_ih": np.zeros(19, np.float32)}, r"b_ih must have shape \(20,\), got \(19,\)"),
        ({"b_hh": np.zeros((1, 20), np.float32)}, r"b_hh must have shape \(20,\), got \(1, 20\)"),
    ],
)
def test_wrong_shapes_name_the_argument(good, change, message):
    with pytest.raises(ValueError, match=message):
        ops.lstm_cell(**_with(good, **change))
