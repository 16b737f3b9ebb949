"""nn.GRU and nn.RNN (tanh / relu) against torch.nn.GRU / RNN (make_recurrent_reference.py, run in its own
process), on every ISA, against the float64 numpy reference for random configurations, plus their error paths.
The engine is the LSTM's (ops/recurrent.cc); test_lstm.py covers what the cell kinds share (thread counts, the
serial fallback, ISA switches) on the LSTM."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import reference as ref
from cpuformer import _core
from cpuformer.nn import GRU, RNN
from helpers import given, num_threads, rand, run_in_threads, settings, st
from make_recurrent_reference import make_reference

MODES_TORCH = ["GRU", "RNN_TANH", "RNN_RELU"]
# Odd sizes (input 13, hidden 37: no vector or panel width divides them), every layer option.
GRID_CASES = [
    dict(name=f"{mode}_{i}", mode=mode, input_size=13, hidden_size=37, steps=6, batch=4, num_layers=layers,
         bidirectional=bidir, batch_first=bf, bias=bias)
    for mode in MODES_TORCH
    for i, (layers, bidir, bf, bias) in enumerate(
        [(layers, bidir, bf, True) for layers, bidir, bf in itertools.product([1, 2, 3], [False, True],
                                                                               [False, True])]
        + [(2, True, False, False), (1, False, True, False)])
]
EXTRA_CASES = [
    dict(name=f"{mode}_{tag}", mode=mode, **sizes)
    for mode in MODES_TORCH
    for tag, sizes in [
        # One step, one sequence.
        ("t1_b1", dict(input_size=5, hidden_size=7, steps=1, batch=1, num_layers=2, bidirectional=True,
                       batch_first=False, bias=True)),
        # Several unit blocks per thread, K > one cache block (256) in the recurrent GEMM.
        ("wide", dict(input_size=300, hidden_size=272, steps=12, batch=3, num_layers=2, bidirectional=True,
                      batch_first=False, bias=True)),
    ]
] + [
    # Enough batch x gates that the projected input is computed in several chunks of steps.
    dict(name="GRU_chunked", mode="GRU", input_size=32, hidden_size=128, steps=40, batch=130, num_layers=2,
         bidirectional=True, batch_first=True, bias=True),
]
CASES = GRID_CASES + EXTRA_CASES
RUN_MODES = ["plain", "hx", "lengths", "hx_lengths"]


@pytest.fixture(scope="session")
def torch_outputs(tmp_path_factory):
    """Runs torch once in its own process (its OpenMP never meets ours) and returns case name -> arrays."""
    return make_reference(tmp_path_factory.mktemp("torch_gru_rnn"), CASES)


def _layer(mode, input_size, hidden_size, **kwargs):
    if mode == "GRU":
        return GRU(input_size, hidden_size, **kwargs)
    return RNN(input_size, hidden_size, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kwargs)


def _build(case, data):
    net = _layer(case["mode"], case["input_size"], case["hidden_size"], num_layers=case["num_layers"],
                 bias=case["bias"], batch_first=case["batch_first"], bidirectional=case["bidirectional"])
    net.load_state_dict({k[3:]: v for k, v in data.items() if k.startswith("sd.")})
    return net


def _assert_matches(ours, data, prefix):
    for name, value in zip(("out", "h_n"), ours):
        expected = data[f"{prefix}.{name}"]
        assert value.shape == expected.shape and value.dtype == np.float32, name
        ref.assert_close(value, expected, "recurrent_vs_torch", err_msg=f"{prefix}.{name}")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_torch(isa, torch_outputs, case):
    data = torch_outputs[case["name"]]
    net = _build(case, data)
    assert net.isa == isa
    for mode in RUN_MODES:
        hx = data["h0"] if "hx" in mode else None
        lengths = data["lengths"] if "lengths" in mode else None
        _assert_matches(net(data["x"], hx, lengths=lengths), data, mode)


UNBATCHED = [c for c in CASES if c["num_layers"] == 2 and c["bidirectional"] and c["bias"]]


@pytest.mark.parametrize("case", UNBATCHED, ids=[c["name"] for c in UNBATCHED])
def test_unbatched_matches_torch(torch_outputs, case):
    data = torch_outputs[case["name"]]
    net = _build(case, data)
    x1 = data["x"][0] if case["batch_first"] else data["x"][:, 0]
    _assert_matches(net(x1), data, "unbatched")
    _assert_matches(net(x1, data["h0"][:, 0]), data, "unbatched_hx")


def _reference(net, x, h0, lengths):
    """float64 numpy GRU / RNN from ref.gru_cell / ref.rnn_cell: time-major x [T, B, I] -> (output, h_n)."""
    params = net.state_dict()
    steps, batch = x.shape[:2]
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    layer_in, h_n = np.asarray(x, np.float64), []
    for layer in range(net.num_layers):
        outs = []
        for d, suffix in enumerate(("", "_reverse")[: net.num_directions]):
            w = [params.get(f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h = h0[layer * net.num_directions + d]
            out = np.zeros((steps, batch, h.shape[-1]))
            for t in (range(steps) if d == 0 else reversed(range(steps))):
                if isinstance(net, GRU):
                    h_new = ref.gru_cell(layer_in[t], h, *w)
                else:
                    h_new = ref.rnn_cell(layer_in[t], h, *w, nonlinearity=net.nonlinearity)
                active = (t < lengths)[:, None]
                h = np.where(active, h_new, h)
                out[t] = np.where(active, h_new, 0.0)
            outs.append(out)
            h_n.append(h)
        layer_in = np.concatenate(outs, axis=-1)
    return layer_in, np.stack(h_n)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_configurations_match_float64_reference(data):
    mode = data.draw(st.sampled_from(MODES_TORCH))
    layers, bidir = data.draw(st.integers(1, 3)), data.draw(st.booleans())
    hidden, inp = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 30))
    steps, batch = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 5))
    net = _layer(mode, inp, hidden, num_layers=layers, bias=data.draw(st.booleans()), bidirectional=bidir,
                 seed=data.draw(st.integers(0, 2**16)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rand(rng, steps, batch, inp)
    h0 = rand(rng, layers * net.num_directions, batch, hidden)
    lengths = rng.integers(1, steps + 1, batch) if data.draw(st.booleans()) else None
    out, h_n = net(x, h0, lengths=lengths)
    want_out, want_h = _reference(net, x, h0, lengths)
    ref.assert_close(out, want_out, "recurrent")
    ref.assert_close(h_n, want_h, "recurrent")


@pytest.mark.parametrize("mode", MODES_TORCH)
def test_each_sequence_equals_running_it_alone(mode):
    net = _layer(mode, 6, 9, num_layers=2, bidirectional=True, batch_first=True, seed=0)
    x = rand(np.random.default_rng(1), 3, 6, 6)
    lengths = [6, 1, 4]
    out, h_n = net(x, lengths=lengths)
    for b, n in enumerate(lengths):
        out_b, h_b = net(x[b:b + 1, :n])
        ref.assert_close(out[b, :n], out_b[0], "recurrent_paths")
        ref.assert_close(h_n[:, b], h_b[:, 0], "recurrent_paths")
    assert not out[1, 1:].any() and not out[2, 4:].any()


@pytest.mark.parametrize("mode", MODES_TORCH)
def test_concurrent_python_threads_get_their_own_results(mode):
    net = _layer(mode, 6, 40, num_layers=2, seed=2)
    inputs = [rand(np.random.default_rng(s), 8, 3, 6) for s in range(4)]
    expected = [net(x)[0] for x in inputs]
    for got, want in zip(run_in_threads(lambda x: net(x)[0], [(x,) for x in inputs]), expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", MODES_TORCH)
def test_results_do_not_depend_on_thread_count(mode):
    net = _layer(mode, 40, 96, num_layers=2, bidirectional=True, seed=1)
    x = rand(np.random.default_rng(2), 9, 5, 40)
    with num_threads(1):
        one = net(x, lengths=[9, 3, 5, 9, 1])
    with num_threads(2):
        two = net(x, lengths=[9, 3, 5, 9, 1])
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


SERIAL_FALLBACK_SCRIPT = textwrap.dedent(
    """
    import numpy as np, cpuformer
    from cpuformer.nn import GRU, RNN
    x = np.random.default_rng(0).standard_normal((30, 8, 24)).astype(np.float32)
    lengths = [30, 7, 19, 1, 30, 2, 29, 11]
    for net in (GRU(24, 128, num_layers=2, bidirectional=True, seed=2), RNN(24, 128, num_layers=2, seed=3)):
        cpuformer.set_num_threads(1)
        want = net(x, lengths=lengths)
        cpuformer.set_num_threads(2)
        for _ in range(3):  # any wait counts as a stall here, so the team turns serial within each call
            got = net(x, lengths=lengths)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    print("ok")
    """
)


def test_serial_fallback_gives_the_same_results():
    """CPUFORMER_LSTM_STALL_US=0 makes every wait a stall, driving the team's switch to one thread mid-call."""
    env = dict(os.environ, CPUFORMER_LSTM_STALL_US="0", PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", SERIAL_FALLBACK_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
@pytest.mark.parametrize("mode", MODES_TORCH)
def test_weight_dtypes_equal_float32_on_the_stored_weights(isa, mode, dtype):
    # As test_lstm.py's: a bf16 / int8 layer equals a float32 one whose weights were rounded / quantized the same
    # way (the gate interleaving moves whole rows, so each row keeps its own scales). Batch 40 takes the
    # widened-panel path of the GEMMs.
    net = _layer(mode, 48, 70, num_layers=2, bidirectional=True, batch_first=True, seed=3, dtype=dtype)
    assert net.dtype == dtype
    stored = {}
    for name, w in net.state_dict().items():
        if name.startswith("weight") and dtype == "bf16":
            w = ref.round_bf16(w)
        elif name.startswith("weight"):
            w = ref.dequantize_int8(*ref.quantize_int8(w)).astype(np.float32)
        stored[name] = w
    twin = _layer(mode, 48, 70, num_layers=2, bidirectional=True, batch_first=True)
    twin.load_state_dict(stored)
    for batch in (1, 40):
        x = rand(np.random.default_rng(batch), batch, 9, 48)
        lengths = np.random.default_rng(batch).integers(1, 10, batch)
        (out, h), (out2, h2) = net(x, lengths=lengths), twin(x, lengths=lengths)
        ref.assert_close(out, out2, "recurrent")
        ref.assert_close(h, h2, "recurrent")


def test_parameter_names_shapes_and_repr():
    gru = GRU(4, 6, num_layers=2, bias=False, bidirectional=True)
    assert gru.parameter_shapes() == {
        "weight_ih_l0": (18, 4), "weight_hh_l0": (18, 6), "weight_ih_l0_reverse": (18, 4),
        "weight_hh_l0_reverse": (18, 6), "weight_ih_l1": (18, 12), "weight_hh_l1": (18, 6),
        "weight_ih_l1_reverse": (18, 12), "weight_hh_l1_reverse": (18, 6),
    }
    assert repr(gru) == "GRU(4, 6, num_layers=2, bias=False, bidirectional=True)"
    rnn = RNN(4, 6, nonlinearity="relu", batch_first=True, dropout=0.5)
    assert rnn.parameter_shapes() == {"weight_ih_l0": (6, 4), "weight_hh_l0": (6, 6), "bias_ih_l0": (6,),
                                      "bias_hh_l0": (6,)}
    assert repr(rnn) == "RNN(4, 6, nonlinearity='relu', batch_first=True, dropout=0.5)"
    assert list(rnn.state_dict()) == list(rnn.parameter_shapes())


def test_positional_arguments_follow_torch():
    # torch.nn.RNN(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, bidirectional)
    rnn = RNN(3, 5, 2, "relu", False, True, 0.0, True)
    assert (rnn.num_layers, rnn.nonlinearity, rnn.bias, rnn.batch_first, rnn.bidirectional) == (2, "relu", False,
                                                                                                 True, True)
    gru = GRU(3, 5, 2, False, True, 0.1, True)
    assert (gru.num_layers, gru.bias, gru.batch_first, gru.dropout, gru.bidirectional) == (2, False, True, 0.1, True)


def test_empty_batch_gives_empty_results_like_torch():
    out, h_n = GRU(6, 5, num_layers=2, bidirectional=True)(np.zeros((4, 0, 6), np.float32))
    assert out.shape == (4, 0, 10) and h_n.shape == (4, 0, 5)


# ---- error paths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: GRU(0, 4), ValueError, "input_size must be >= 1, got 0"),
        (lambda: RNN(3, 0), ValueError, "hidden_size must be >= 1, got 0"),
        (lambda: GRU(3, 4, num_layers=0), ValueError, "num_layers must be >= 1, got 0"),
        (lambda: RNN(3, 4, nonlinearity="sigmoid"), ValueError, "nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"),
        (lambda: GRU(3, 4, dropout=1.5), ValueError, r"dropout must be a number in \[0, 1\]"),
        (lambda: RNN(3, 4, dropout="0.1"), TypeError, r"dropout must be a number in \[0, 1\], got str"),
        (lambda: GRU(3.0, 4), TypeError, "input_size must be an int, got float"),
        (lambda: GRU(3, 4, dtype="float16"), ValueError, "dtype 'float16' is not supported"),
    ],
)
def test_constructor_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_state_dict_errors_name_the_key_and_keep_the_weights():
    gru = GRU(6, 5, bidirectional=True, seed=0)
    x = rand(np.random.default_rng(0), 3, 2, 6)
    before = gru(x)[0]
    sd = gru.state_dict()
    del sd["bias_hh_l0_reverse"]
    with pytest.raises(KeyError, match=r"missing keys: \['bias_hh_l0_reverse'\]"):
        gru.load_state_dict(sd)
    sd = {k: np.zeros_like(v) for k, v in gru.state_dict().items()}
    sd["weight_hh_l0_reverse"] = np.zeros((15, 6), np.float32)
    with pytest.raises(ValueError, match=r"w_hh must have shape \(15, 5\), got \(15, 6\) "
                                         r"\(torch.nn.GRU's weight_hh_l0_reverse\)"):
        gru.load_state_dict(sd)
    np.testing.assert_array_equal(gru(x)[0], before)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda n: n(np.zeros((3, 2, 6), np.float64)), TypeError, "x must have dtype float32, got float64"),
        (lambda n: n(np.zeros((3, 2, 7), np.float32)), ValueError,
         r"x must have shape \(steps, batch, 6\), got \(3, 2, 7\)"),
        (lambda n: n(np.zeros((3, 2, 6), np.float32), np.zeros((2, 2, 5), np.float32)), ValueError,
         r"h0 must have shape \(4, 2, 5\), got \(2, 2, 5\)"),
        (lambda n: n(np.zeros((3, 2, 6), np.float32), np.zeros((4, 2, 5), np.float64)), TypeError,
         "h0 must have dtype float32, got float64"),
        (lambda n: n(np.zeros((3, 2, 6), np.float32), (np.zeros((4, 2, 5), np.float32),)), TypeError,
         "hx must be a numpy.ndarray of dtype float32, got tuple"),
        (lambda n: n(np.zeros((3, 6), np.float32), np.zeros((4, 1, 5), np.float32)), ValueError,
         r"hx must be 2-D for a 2-D input \(unbatched\), got shape \(4, 1, 5\)"),
        (lambda n: n(np.zeros((3, 2, 6), np.float32), lengths=[3, 0]), ValueError,
         r"lengths\[1\] = 0 is outside \[1, 3\]"),
        (lambda n: n(np.zeros((3, 2, 6), np.float32), lengths=[4, 1]), ValueError,
         r"lengths\[0\] = 4 is outside \[1, 3\]"),
        (lambda n: n(np.zeros((3, 2, 6), np.float32), lengths=[3]), ValueError,
         r"lengths must have shape \(2,\) \(one per batch entry\), got \(1,\)"),
        (lambda n: n(np.zeros((3, 2, 6), np.float32), lengths=[3.0, 2.0]), TypeError,
         "lengths must have an integer dtype, got float64"),
        (lambda n: n(np.zeros((3, 6), np.float32), lengths=[3]), ValueError,
         r"lengths needs a batched \(3-D\) input"),
    ],
)
@pytest.mark.parametrize("mode", MODES_TORCH)
def test_bad_forward_arguments(mode, call, error, message):
    with pytest.raises(error, match=message):
        call(_layer(mode, 6, 5, num_layers=2, bidirectional=True, seed=0))


def test_zero_steps_names_the_layer():
    with pytest.raises(ValueError, match="x has 0 time steps; a GRU needs at least one"):
        GRU(6, 5)(np.zeros((0, 2, 6), np.float32))
    with pytest.raises(ValueError, match="x has 0 time steps; an RNN needs at least one"):
        RNN(6, 5, nonlinearity="relu")(np.zeros((0, 2, 6), np.float32))


def test_packed_recurrent_checks_directly():
    w_ih, w_hh = np.zeros((15, 6), np.float32), np.zeros((15, 5), np.float32)
    with pytest.raises(ValueError, match="mode must be one of 'LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU'; got 'gru'"):
        _core.PackedRecurrent("gru", 6, 5, 1, False, [(w_ih, w_hh, None, None, None)])
    with pytest.raises(ValueError, match=r"proj_size must be 0 for a GRU \(only LSTM has projections\), got 2"):
        _core.PackedRecurrent("GRU", 6, 5, 1, False, [(w_ih, w_hh, None, None, None)], proj_size=2)
    with pytest.raises(ValueError, match=r"weights\[0\].w_ih must have shape \(5, 6\), got \(15, 6\) "
                                         r"\(torch.nn.RNN's weight_ih_l0\)"):
        _core.PackedRecurrent("RNN_RELU", 6, 5, 1, False, [(w_ih, w_hh, None, None, None)])
    gru = _core.PackedRecurrent("GRU", 6, 5, 1, False, [(w_ih, w_hh, None, None, None)])
    assert (gru.mode, gru.hidden_size, gru.bidirectional) == ("GRU", 5, False)
    with pytest.raises(ValueError, match=r"c0 must be None for a GRU \(only an LSTM has a cell state\)"):
        gru.forward(np.zeros((2, 1, 6), np.float32), None, np.zeros((1, 1, 5), np.float32))
    out, h_n, c_n = gru.forward(np.zeros((2, 1, 6), np.float32))
    assert c_n is None and out.shape == (2, 1, 5)
