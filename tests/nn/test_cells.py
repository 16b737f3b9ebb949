"""nn.LSTMCell / GRUCell / RNNCell against torch's cells (make_recurrent_reference.py, own process) on every ISA,
against the sequence layers they share an engine with, and their error paths."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from cpuformer.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from helpers import rand
from make_recurrent_reference import make_reference

KINDS = ["LSTMCell", "GRUCell", "RNNCell_tanh", "RNNCell_relu"]
CASES = [
    dict(name=f"{kind}_{tag}", cell=kind, **sizes)
    for kind in KINDS
    for tag, sizes in [
        ("odd", dict(input_size=13, hidden_size=37, batch=5, bias=True)),
        ("nobias", dict(input_size=13, hidden_size=37, batch=3, bias=False)),
        ("tiny", dict(input_size=1, hidden_size=1, batch=1, bias=True)),
        ("wide", dict(input_size=300, hidden_size=272, batch=7, bias=True)),
    ]
]


@pytest.fixture(scope="session")
def torch_outputs(tmp_path_factory):
    return make_reference(tmp_path_factory.mktemp("torch_cells"), CASES)


def _cell(kind, input_size, hidden_size, **kwargs):
    if kind.startswith("RNNCell"):
        return RNNCell(input_size, hidden_size, nonlinearity=kind.split("_")[1], **kwargs)
    return {"LSTMCell": LSTMCell, "GRUCell": GRUCell}[kind](input_size, hidden_size, **kwargs)


def _close(got, want, what):
    assert got.shape == want.shape and got.dtype == np.float32, what
    ref.assert_close(got, want, "recurrent_vs_torch", err_msg=what)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_torch(isa, torch_outputs, case):
    data = torch_outputs[case["name"]]
    cell = _cell(case["cell"], case["input_size"], case["hidden_size"], bias=case["bias"])
    cell.load_state_dict({k[3:]: v for k, v in data.items() if k.startswith("sd.")})
    assert cell.isa == isa
    lstm = case["cell"] == "LSTMCell"
    x, h, c = data["x"], data["h"], data["c"]
    for mode, xi, hx in (("plain", x, None), ("hx", x, (h, c) if lstm else h), ("unbatched", x[0], None),
                         ("unbatched_hx", x[0], (h[0], c[0]) if lstm else h[0])):
        got = cell(xi, hx)
        if lstm:
            _close(got[0], data[f"{mode}.h"], f"{mode}.h")
            _close(got[1], data[f"{mode}.c"], f"{mode}.c")
        else:
            _close(got, data[f"{mode}.h"], f"{mode}.h")


@pytest.mark.parametrize("kind", KINDS)
def test_steps_equal_the_sequence_layer(isa, kind):
    """Stepping a cell over a sequence is a one-layer nn.LSTM / GRU / RNN with the same weights."""
    cell = _cell(kind, 11, 29, seed=4)
    if kind == "LSTMCell":
        layer = LSTM(11, 29)
    elif kind == "GRUCell":
        layer = GRU(11, 29)
    else:
        layer = RNN(11, 29, nonlinearity=kind.split("_")[1])
    layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    rng = np.random.default_rng(5)
    x, h = rand(rng, 6, 4, 11), rand(rng, 4, 29)
    state = (h, rand(rng, 4, 29)) if kind == "LSTMCell" else h
    out, final = layer(x, (state[0][None], state[1][None]) if kind == "LSTMCell" else state[None])
    for t in range(x.shape[0]):
        state = cell(x[t], state)
        ref.assert_close(state[0] if kind == "LSTMCell" else state, out[t], "recurrent_paths")
    if kind == "LSTMCell":
        ref.assert_close(state[1], final[1][0], "recurrent_paths")


def _float64_step(cell, x, h):
    sd = cell.state_dict()
    w = (sd["weight_ih"], sd["weight_hh"], sd.get("bias_ih"), sd.get("bias_hh"))
    if isinstance(cell, GRUCell):
        return ref.gru_cell(x, h, *w)
    return ref.rnn_cell(x, h, *w, nonlinearity=cell.nonlinearity)


# Hidden sizes around the vector widths (4, 8, 16 lanes) and the panel widths (8, 16, 32), so the gate kernels'
# full and tail paths and partly filled unit blocks all run.
@pytest.mark.parametrize("hidden", [1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 53])
@pytest.mark.parametrize("kind", ["GRUCell", "RNNCell_tanh", "RNNCell_relu"])
def test_hidden_sizes_match_float64_reference(isa, kind, hidden):
    cell = _cell(kind, 19, hidden, seed=hidden)
    rng = np.random.default_rng(hidden)
    x, h = rand(rng, 6, 19), rand(rng, 6, hidden)
    ref.assert_close(cell(x, h), _float64_step(cell, x, h), "recurrent")


@pytest.mark.parametrize("kind", ["GRUCell", "RNNCell_tanh", "RNNCell_relu"])
def test_saturated_gates_stay_finite(isa, kind):
    # Weights of +-30 drive every sigmoid / tanh into saturation; results must stay finite and exact.
    cell = _cell(kind, 24, 40)
    rng = np.random.default_rng(6)
    cell.load_state_dict({k: v * 30.0 for k, v in cell.state_dict().items()})
    x, h = rand(rng, 5, 24), rand(rng, 5, 40)
    got = cell(x, h)
    assert np.isfinite(got).all()
    want = _float64_step(cell, x, h)
    if kind == "RNNCell_relu":  # unbounded: relative tolerance on values in the hundreds
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    else:
        # Gate sums here reach ~100 and cancel: float32 rounding of a sum is ~eps * sum|w x|, whatever order the
        # GEMM adds in (which follows the tile and cache blocking of the host), so atol grows with that sum.
        sd = cell.state_dict()
        magnitude = np.abs(x) @ np.abs(sd["weight_ih"]).T + np.abs(h) @ np.abs(sd["weight_hh"]).T
        ref.assert_close(got, want, "recurrent", scale=max(1.0, float(magnitude.max()) / 30.0))


def test_lstm_cell_equals_the_one_shot_op():
    cell = LSTMCell(10, 12, seed=7)
    sd = cell.state_dict()
    rng = np.random.default_rng(7)
    x, h, c = rand(rng, 3, 10), rand(rng, 3, 12), rand(rng, 3, 12)
    got = cell(x, (h, c))
    want = ops.lstm_cell(x, h, c, sd["weight_ih"], sd["weight_hh"], sd["bias_ih"], sd["bias_hh"])
    ref.assert_close(got[0], want[0], "recurrent_paths")
    ref.assert_close(got[1], want[1], "recurrent_paths")


def test_weights_are_packed_once():
    cell = GRUCell(8, 16, seed=1)
    packed = cell._packed
    x = rand(np.random.default_rng(1), 2, 8)
    h = cell(x)
    for _ in range(3):
        h = cell(x, h)
    assert cell._packed is packed
    cell.load_state_dict(cell.state_dict())
    assert cell._packed is not packed


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
def test_weight_dtypes_equal_float32_on_the_stored_weights(dtype):
    cell = GRUCell(48, 70, seed=3, dtype=dtype)
    stored = {}
    for name, w in cell.state_dict().items():
        if name.startswith("weight"):
            w = ref.round_bf16(w) if dtype == "bf16" else ref.dequantize_int8(*ref.quantize_int8(w)).astype(np.float32)
        stored[name] = w
    twin = GRUCell(48, 70)
    twin.load_state_dict(stored)
    x, h = rand(np.random.default_rng(2), 5, 48), rand(np.random.default_rng(3), 5, 70)
    ref.assert_close(cell(x, h), twin(x, h), "recurrent")


def test_empty_batch_and_repr():
    assert GRUCell(6, 5)(np.zeros((0, 6), np.float32)).shape == (0, 5)
    h, c = LSTMCell(6, 5)(np.zeros((0, 6), np.float32))
    assert h.shape == (0, 5) and c.shape == (0, 5)
    assert repr(LSTMCell(3, 4, bias=False)) == "LSTMCell(3, 4, bias=False)"
    assert repr(RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity='relu')"
    assert list(GRUCell(3, 4).parameter_shapes().items()) == [("weight_ih", (12, 3)), ("weight_hh", (12, 4)),
                                                              ("bias_ih", (12,)), ("bias_hh", (12,))]


# ---- error paths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: GRUCell(0, 4), ValueError, "input_size must be >= 1, got 0"),
        (lambda: LSTMCell(3, 0), ValueError, "hidden_size must be >= 1, got 0"),
        (lambda: RNNCell(3, 4, nonlinearity="gelu"), ValueError, "nonlinearity must be 'tanh' or 'relu', got 'gelu'"),
        (lambda: RNNCell(3, 4.0), TypeError, "hidden_size must be an int, got float"),
        (lambda: LSTMCell(3, 4, dtype="int4"), ValueError, "dtype 'int4' is not supported"),
    ],
)
def test_constructor_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_state_dict_errors():
    cell = LSTMCell(6, 5, seed=0)
    sd = cell.state_dict()
    sd["weight_hh"] = np.zeros((20, 6), np.float32)
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh'\] must have shape \(20, 5\), got \(20, 6\) "
                                         r"\(torch.nn.LSTMCell's weight_hh\)"):
        cell.load_state_dict(sd)
    sd = cell.state_dict()
    sd["weight_hh_l0"] = sd.pop("weight_hh")
    with pytest.raises(KeyError, match=r"missing keys: \['weight_hh'\]; unexpected keys: \['weight_hh_l0'\]"):
        cell.load_state_dict(sd)


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((np.zeros((2, 6), np.float64),), TypeError, "x must have dtype float32, got float64"),
        (([[0.0] * 6],), TypeError, "x must be a numpy.ndarray of dtype float32, got list"),
        ((np.zeros((2, 7), np.float32),), ValueError, r"x must have shape \(batch, 6\) or \(6,\), got \(2, 7\)"),
        ((np.zeros((1, 2, 6), np.float32),), ValueError, r"x must have shape \(batch, 6\) or \(6,\), got \(1, 2, 6\)"),
        ((np.zeros((2, 6), np.float32), np.zeros((3, 5), np.float32)), ValueError,
         r"hx must have shape \(2, 5\), got \(3, 5\)"),
        ((np.zeros(6, np.float32), np.zeros((1, 5), np.float32)), ValueError,
         r"hx must have shape \(5,\), got \(1, 5\)"),
        ((np.zeros((2, 6), np.float32), np.zeros((2, 5), np.float64)), TypeError,
         "hx must have dtype float32, got float64"),
        ((np.zeros((2, 6), np.float32), [0.0] * 5), TypeError, "hx must be a numpy.ndarray of dtype float32, got list"),
    ],
)
@pytest.mark.parametrize("kind", ["GRUCell", "RNNCell_tanh"])
def test_bad_call_arguments(kind, args, error, message):
    with pytest.raises(error, match=message):
        _cell(kind, 6, 5, seed=0)(*args)


@pytest.mark.parametrize(
    "hx, error, message",
    [
        (np.zeros((2, 5), np.float32), TypeError, r"hx must be a tuple \(h, c\)"),
        ((np.zeros((2, 5), np.float32), np.zeros((2, 4), np.float32)), ValueError,
         r"c must have shape \(2, 5\), got \(2, 4\)"),
        ((np.zeros((1, 5), np.float32), np.zeros((2, 5), np.float32)), ValueError,
         r"h must have shape \(2, 5\), got \(1, 5\)"),
    ],
)
def test_bad_lstm_cell_state(hx, error, message):
    with pytest.raises(error, match=message):
        LSTMCell(6, 5)(np.zeros((2, 6), np.float32), hx)
