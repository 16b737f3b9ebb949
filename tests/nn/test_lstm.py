"""nn.LSTM against torch.nn.LSTM (make_lstm_reference.py, run in its own process, returns state_dicts, inputs and
outputs), on every ISA, plus the error paths of the constructor, load_state_dict and forward."""
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
from cpuformer.nn import LSTM
from helpers import given, num_threads, rand, run_in_threads, settings, st
from make_lstm_reference import make_reference

# Every combination of the layer options, each run plain, with hx, with lengths, and with both.
OPTION_GRID = [
    dict(num_layers=layers, bidirectional=bidir, batch_first=bf, proj_size=proj, bias=bias)
    for layers, bidir, bf, proj, bias in itertools.product([1, 2, 3], [False, True], [False, True], [0, 20],
                                                           [True, False])
]
GRID_CASES = [dict(name=f"grid{i}", input_size=37, hidden_size=53, steps=6, batch=4, **opts)
              for i, opts in enumerate(OPTION_GRID)]
EXTRA_CASES = [
    # One step, one sequence.
    dict(name="t1_b1", input_size=5, hidden_size=7, steps=1, batch=1, num_layers=2, bidirectional=True,
         batch_first=False, proj_size=0, bias=True),
    # Enough batch x gates that the projected input is computed in several chunks of steps.
    dict(name="chunked", input_size=32, hidden_size=128, steps=40, batch=130, num_layers=2, bidirectional=True,
         batch_first=True, proj_size=0, bias=True),
    # Larger sizes: several unit blocks per thread, K > one cache block (256) in the recurrent GEMM.
    dict(name="wide", input_size=300, hidden_size=272, steps=12, batch=3, num_layers=2, bidirectional=True,
         batch_first=False, proj_size=0, bias=True),
    dict(name="wide_proj", input_size=64, hidden_size=300, steps=9, batch=5, num_layers=2, bidirectional=False,
         batch_first=True, proj_size=260, bias=True),
]
CASES = GRID_CASES + EXTRA_CASES
MODES = ["plain", "hx", "lengths", "hx_lengths"]

@pytest.fixture(scope="session")
def torch_outputs(tmp_path_factory):
    """Runs torch once in its own process (its OpenMP never meets ours) and returns case name -> arrays."""
    return make_reference(tmp_path_factory.mktemp("torch_lstm"), CASES)


def _build(case, data):
    lstm = LSTM(case["input_size"], case["hidden_size"], num_layers=case["num_layers"], bias=case["bias"],
                batch_first=case["batch_first"], bidirectional=case["bidirectional"], proj_size=case["proj_size"])
    lstm.load_state_dict({k[3:]: v for k, v in data.items() if k.startswith("sd.")})
    return lstm


def _assert_matches(ours, data, prefix):
    out, (h_n, c_n) = ours
    for name, value in (("out", out), ("h_n", h_n), ("c_n", c_n)):
        expected = data[f"{prefix}.{name}"]
        assert value.shape == expected.shape and value.dtype == np.float32, name
        ref.assert_close(value, expected, "lstm_vs_torch", err_msg=f"{prefix}.{name}")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_torch(isa, torch_outputs, case):
    data = torch_outputs[case["name"]]
    lstm = _build(case, data)
    assert lstm.isa == isa
    for mode in MODES:
        hx = (data["h0"], data["c0"]) if "hx" in mode else None
        lengths = data["lengths"] if "lengths" in mode else None
        _assert_matches(lstm(data["x"], hx, lengths=lengths), data, mode)


@pytest.mark.parametrize("case", CASES[:8] + EXTRA_CASES[:1], ids=[c["name"] for c in CASES[:8] + EXTRA_CASES[:1]])
def test_unbatched_matches_torch(torch_outputs, case):
    data = torch_outputs[case["name"]]
    lstm = _build(case, data)
    x1 = data["x"][0] if case["batch_first"] else data["x"][:, 0]
    _assert_matches(lstm(x1), data, "unbatched")
    _assert_matches(lstm(x1, (data["h0"][:, 0], data["c0"][:, 0])), data, "unbatched_hx")


def _reference_lstm(lstm, x, h0, c0, lengths):
    """float64 numpy LSTM from ref.lstm_cell: time-major x [T, B, I] -> (output, h_n, c_n) with torch's semantics."""
    params = lstm.state_dict()
    steps, batch = x.shape[:2]
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    layer_in, h_n, c_n = np.asarray(x, np.float64), [], []
    for layer in range(lstm.num_layers):
        outs = []
        for d, suffix in enumerate(("", "_reverse")[: lstm.num_directions]):
            get = lambda name: params.get(f"{name}_l{layer}{suffix}")
            h, c = h0[layer * lstm.num_directions + d], c0[layer * lstm.num_directions + d]
            out = np.zeros((steps, batch, h.shape[-1]))
            for t in (range(steps) if d == 0 else reversed(range(steps))):
                h_new, c_new = ref.lstm_cell(layer_in[t], h, c, get("weight_ih"), get("weight_hh"), get("bias_ih"),
                                             get("bias_hh"))
                if lstm.proj_size:
                    h_new = h_new @ np.asarray(get("weight_hr"), np.float64).T
                active = (t < lengths)[:, None]
                h, c = np.where(active, h_new, h), np.where(active, c_new, c)
                out[t] = np.where(active, h_new, 0.0)
            outs.append(out)
            h_n.append(h)
            c_n.append(c)
        layer_in = np.concatenate(outs, axis=-1)
    return layer_in, np.stack(h_n), np.stack(c_n)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_random_configurations_match_float64_reference(data):
    layers, bidir = data.draw(st.integers(1, 3)), data.draw(st.booleans())
    hidden = data.draw(st.integers(1, 40))
    proj = data.draw(st.integers(0, hidden - 1))
    inp, steps, batch = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 8)), data.draw(st.integers(1, 5))
    lstm = LSTM(inp, hidden, num_layers=layers, bias=data.draw(st.booleans()), bidirectional=bidir,
                proj_size=proj, seed=data.draw(st.integers(0, 2**16)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rand(rng, steps, batch, inp)
    states = layers * lstm.num_directions
    h0 = rand(rng, states, batch, proj or hidden)
    c0 = rand(rng, states, batch, hidden)
    lengths = rng.integers(1, steps + 1, batch) if data.draw(st.booleans()) else None
    out, (h_n, c_n) = lstm(x, (h0, c0), lengths=lengths)
    want = _reference_lstm(lstm, x, h0, c0, lengths)
    for got, expected in zip((out, h_n, c_n), want):
        ref.assert_close(got, expected, "lstm")


def _small(**kwargs):
    args = dict(input_size=6, hidden_size=5, num_layers=2, bidirectional=True, seed=0)
    args.update(kwargs)
    return LSTM(**args)


def _x(*shape, seed=0):
    return rand(np.random.default_rng(seed), *shape)


def test_full_lengths_equal_no_lengths():
    lstm = _small(proj_size=3)
    x = _x(7, 4, 6)
    out, (h_n, c_n) = lstm(x)
    out_l, (h_l, c_l) = lstm(x, lengths=[7, 7, 7, 7])
    np.testing.assert_array_equal(out, out_l)
    np.testing.assert_array_equal(h_n, h_l)
    np.testing.assert_array_equal(c_n, c_l)


def test_padding_content_is_ignored():
    lstm = _small()
    x = _x(5, 3, 6)
    lengths = np.array([5, 2, 4])
    noisy = x.copy()
    for b, n in enumerate(lengths):
        noisy[n:, b] = 1e6  # huge values past each length must not reach any result
    ours, theirs = lstm(x, lengths=lengths), lstm(noisy, lengths=lengths)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1][0], theirs[1][0])
    assert not ours[0][2:, 1].any() and not ours[0][4:, 2].any()


def test_each_sequence_equals_running_it_alone():
    lstm = _small(batch_first=True)
    x = _x(3, 6, 6)
    lengths = [6, 1, 4]
    out, (h_n, c_n) = lstm(x, lengths=lengths)
    for b, n in enumerate(lengths):
        out_b, (h_b, c_b) = lstm(x[b:b + 1, :n])
        ref.assert_close(out[b, :n], out_b[0], "lstm_paths")
        ref.assert_close(h_n[:, b], h_b[:, 0], "lstm_paths")
        ref.assert_close(c_n[:, b], c_b[:, 0], "lstm_paths")


def test_results_do_not_depend_on_thread_count():
    lstm = LSTM(40, 96, num_layers=2, bidirectional=True, seed=1)
    x = _x(9, 5, 40)
    with num_threads(1):
        one = lstm(x, lengths=[9, 3, 5, 9, 1])
    with num_threads(2):
        two = lstm(x, lengths=[9, 3, 5, 9, 1])
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1][0], two[1][0])


def test_concurrent_python_threads_get_their_own_results():
    lstm = _small()
    inputs = [_x(8, 3, 6, seed=s) for s in range(4)]
    expected = [lstm(x)[0] for x in inputs]
    for got, want in zip(run_in_threads(lambda x: lstm(x)[0], [(x,) for x in inputs]), expected):
        np.testing.assert_array_equal(got, want)


SERIAL_FALLBACK_SCRIPT = textwrap.dedent(
    """
    import numpy as np, cpuformer
    from cpuformer.nn import LSTM
    lstm = LSTM(24, 128, num_layers=2, bidirectional=True, proj_size=64, seed=2)
    x = np.random.default_rng(0).standard_normal((30, 8, 24)).astype(np.float32)
    lengths = [30, 7, 19, 1, 30, 2, 29, 11]
    cpuformer.set_num_threads(1)
    want = lstm(x, lengths=lengths)
    cpuformer.set_num_threads(2)
    for _ in range(3):  # any wait counts as a stall here, so the team turns serial within each call
        got = lstm(x, lengths=lengths)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1][0], want[1][0])
        assert np.array_equal(got[1][1], want[1][1])
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


def test_keeps_its_isa_after_switch():
    previous = _core._isa()
    _core._set_isa("generic")
    try:
        lstm = _small()
    finally:
        _core._set_isa(previous)
    assert lstm.isa == "generic"
    x = _x(4, 2, 6)
    _core._set_isa("generic")
    try:
        expected = lstm(x)[0]
    finally:
        _core._set_isa(previous)
    np.testing.assert_array_equal(lstm(x)[0], expected)


def test_empty_batch_gives_empty_results_like_torch():
    lstm = _small(proj_size=3)
    out, (h_n, c_n) = lstm(np.zeros((4, 0, 6), np.float32))
    assert out.shape == (4, 0, 6) and h_n.shape == (4, 0, 3) and c_n.shape == (4, 0, 5)
    out, _ = _small(batch_first=True)(np.zeros((0, 4, 6), np.float32), lengths=np.zeros(0, np.int64))
    assert out.shape == (0, 4, 10)


def test_state_dict_round_trip_and_float64_weights_are_cast():
    a = _small(proj_size=2, seed=3)
    b = _small(proj_size=2, seed=4)
    x = _x(5, 2, 6)
    assert not np.array_equal(a(x)[0], b(x)[0])
    b.load_state_dict({k: v.astype(np.float64) for k, v in a.state_dict().items()})
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    assert all(v.dtype == np.float32 for v in b.state_dict().values())
    assert list(a.state_dict()) == list(a.parameter_shapes())


def test_parameter_names_and_repr():
    lstm = LSTM(4, 6, num_layers=2, bias=False, bidirectional=True, proj_size=3)
    assert lstm.parameter_shapes() == {
        "weight_ih_l0": (24, 4), "weight_hh_l0": (24, 3), "weight_hr_l0": (3, 6),
        "weight_ih_l0_reverse": (24, 4), "weight_hh_l0_reverse": (24, 3), "weight_hr_l0_reverse": (3, 6),
        "weight_ih_l1": (24, 6), "weight_hh_l1": (24, 3), "weight_hr_l1": (3, 6),
        "weight_ih_l1_reverse": (24, 6), "weight_hh_l1_reverse": (24, 3), "weight_hr_l1_reverse": (3, 6),
    }
    assert repr(lstm) == "LSTM(4, 6, num_layers=2, bias=False, bidirectional=True, proj_size=3)"


def test_positional_arguments_follow_torch_and_dropout_is_accepted():
    # torch.nn.LSTM(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size)
    lstm = LSTM(3, 5, 2, False, True, 0.25, True, 2)
    assert (lstm.num_layers, lstm.bias, lstm.batch_first, lstm.dropout, lstm.bidirectional, lstm.proj_size) == (
        2, False, True, 0.25, True, 2)
    assert repr(lstm) == "LSTM(3, 5, num_layers=2, bias=False, batch_first=True, dropout=0.25, bidirectional=True, " \
                         "proj_size=2)"
    # Inference ignores dropout, as torch's eval mode does.
    plain = LSTM(3, 5, 2, False, True, 0.0, True, 2)
    plain.load_state_dict(lstm.state_dict())
    x = _x(2, 4, 3)
    np.testing.assert_array_equal(lstm(x)[0], plain(x)[0])


# ---- error paths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(input_size=0, hidden_size=4), ValueError, "input_size must be >= 1, got 0"),
        (dict(input_size=3, hidden_size=0), ValueError, "hidden_size must be >= 1, got 0"),
        (dict(input_size=3, hidden_size=4, num_layers=0), ValueError, "num_layers must be >= 1, got 0"),
        (dict(input_size=3, hidden_size=4, proj_size=-1), ValueError,
         r"proj_size must be in \[0, hidden_size\) = \[0, 4\), got -1"),
        (dict(input_size=3, hidden_size=4, proj_size=4), ValueError,
         r"proj_size must be in \[0, hidden_size\) = \[0, 4\), got 4"),
        (dict(input_size=3.0, hidden_size=4), TypeError, "input_size must be an int, got float"),
        (dict(input_size=3, hidden_size=True), TypeError, "hidden_size must be an int, got bool"),
        (dict(input_size=3, hidden_size=4, dropout=-0.1), ValueError, r"dropout must be a number in \[0, 1\]"),
    ],
)
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        LSTM(**kwargs)


def test_state_dict_missing_and_unexpected_keys_are_named():
    lstm = _small(num_layers=1)
    sd = lstm.state_dict()
    del sd["bias_hh_l0_reverse"]
    sd["weight_ih_l1"] = np.zeros((20, 10), np.float32)
    with pytest.raises(KeyError, match=r"missing keys: \['bias_hh_l0_reverse'\]; unexpected keys: \['weight_ih_l1'\]"):
        lstm.load_state_dict(sd)


def test_state_dict_wrong_shape_is_named_and_nothing_changes():
    lstm = _small(num_layers=1)
    x = _x(3, 2, 6)
    before = lstm(x)[0]
    sd = {k: np.zeros_like(v) for k, v in lstm.state_dict().items()}
    sd["weight_hh_l0"] = np.zeros((20, 6), np.float32)
    with pytest.raises(ValueError, match=r"w_hh must have shape \(20, 5\), got \(20, 6\) \(torch.nn.LSTM's weight_hh_l0\)"):
        lstm.load_state_dict(sd)
    np.testing.assert_array_equal(lstm(x)[0], before)


def test_state_dict_integer_values_are_type_error():
    lstm = _small(num_layers=1, bidirectional=False)
    sd = lstm.state_dict()
    sd["bias_ih_l0"] = np.zeros(20, np.int64)
    with pytest.raises(TypeError, match=r"state_dict\['bias_ih_l0'\] must hold floating-point values, got dtype int64"):
        lstm.load_state_dict(sd)


@pytest.mark.parametrize(
    "x, error, message",
    [
        (np.zeros((3, 2, 6), np.float64), TypeError, "x must have dtype float32, got float64"),
        ([[0.0] * 6], TypeError, "x must be a numpy.ndarray of dtype float32, got list"),
        (np.zeros((3, 2, 7), np.float32), ValueError, r"x must have shape \(steps, batch, 6\), got \(3, 2, 7\)"),
        (np.zeros((1, 3, 2, 6), np.float32), ValueError,
         r"x must have shape \(steps, batch, 6\), got \(1, 3, 2, 6\)"),
        (np.zeros(6, np.float32), ValueError, r"x must have shape \(steps, batch, 6\), got \(6,\)"),
        (np.zeros((0, 2, 6), np.float32), ValueError, r"x has 0 time steps; an LSTM needs at least one"),
    ],
)
def test_bad_x(x, error, message):
    with pytest.raises(error, match=message):
        _small()(x)


@pytest.mark.parametrize(
    "hx, error, message",
    [
        ("h", TypeError, r"hx must be a tuple \(h0, c0\)"),
        ((np.zeros((4, 2, 5), np.float32),), TypeError, r"hx must be a tuple \(h0, c0\)"),
        ((np.zeros((4, 2, 5), np.float32), None), TypeError, "c0 must be a numpy.ndarray of dtype float32, got NoneType"),
        ((np.zeros((4, 5), np.float32), np.zeros((4, 2, 5), np.float32)), ValueError,
         r"h0 must have shape \(4, 2, 5\), got \(4, 5\)"),
        ((np.zeros((2, 2, 5), np.float32), np.zeros((4, 2, 5), np.float32)), ValueError,
         r"h0 must have shape \(4, 2, 5\), got \(2, 2, 5\)"),
        ((np.zeros((4, 2, 5), np.float32), np.zeros((4, 3, 5), np.float32)), ValueError,
         r"c0 must have shape \(4, 2, 5\), got \(4, 3, 5\)"),
        ((np.zeros((4, 2, 5), np.float64), np.zeros((4, 2, 5), np.float32)), TypeError,
         "h0 must have dtype float32, got float64"),
    ],
)
def test_bad_hx(hx, error, message):
    with pytest.raises(error, match=message):
        _small()(_x(3, 2, 6), hx)


def test_bad_hx_shape_with_projection_names_proj_size():
    lstm = _small(proj_size=3)
    with pytest.raises(ValueError, match=r"h0 must have shape \(4, 2, 3\), got \(4, 2, 5\)"):
        lstm(_x(3, 2, 6), (np.zeros((4, 2, 5), np.float32), np.zeros((4, 2, 5), np.float32)))


def test_unbatched_hx_must_be_2d():
    with pytest.raises(ValueError, match=r"h0 must be 2-D for a 2-D input \(unbatched\), got shape \(4, 1, 5\)"):
        _small()(_x(3, 6), (np.zeros((4, 1, 5), np.float32), np.zeros((4, 1, 5), np.float32)))


@pytest.mark.parametrize(
    "lengths, error, message",
    [
        ([3, 0], ValueError, r"lengths\[1\] = 0 is outside \[1, 3\]"),
        ([4, 1], ValueError, r"lengths\[0\] = 4 is outside \[1, 3\]"),
        ([-1, 2], ValueError, r"lengths\[0\] = -1 is outside \[1, 3\]"),
        ([3, 2, 1], ValueError, r"lengths must have shape \(2,\) \(one per batch entry\), got \(3,\)"),
        ([[3, 2]], ValueError, r"lengths must have shape \(2,\) \(one per batch entry\), got \(1, 2\)"),
        ([3.0, 2.0], TypeError, "lengths must have an integer dtype, got float64"),
    ],
)
def test_bad_lengths(lengths, error, message):
    with pytest.raises(error, match=message):
        _small()(_x(3, 2, 6), lengths=lengths)


def test_lengths_need_a_batch():
    with pytest.raises(ValueError, match=r"lengths needs a batched \(3-D\) input"):
        _small()(_x(3, 6), lengths=[3])


def test_packed_lstm_checks_weights_directly():
    w = np.zeros((20, 6), np.float32)
    with pytest.raises(ValueError, match=r"weights must hold num_layers \* directions = 2 tuples"):
        _core.PackedLSTM(6, 5, 1, True, 0, [(w, np.zeros((20, 5), np.float32), None, None, None)])
    with pytest.raises(ValueError, match=r"weights\[0\].w_hh must have shape \(20, 5\), got \(20, 6\)"):
        _core.PackedLSTM(6, 5, 1, False, 0, [(w, w, None, None, None)])
    with pytest.raises(ValueError, match=r"weights\[0\].w_hr must be None when proj_size is 0"):
        _core.PackedLSTM(6, 5, 1, False, 0, [(w, np.zeros((20, 5), np.float32), None, None, w)])
    with pytest.raises(ValueError, match=r"proj_size must be in \[0, hidden_size\) = \[0, 5\), got 5"):
        _core.PackedLSTM(6, 5, 1, False, 5, [(w, np.zeros((20, 5), np.float32), None, None, None)])


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
@pytest.mark.parametrize("batch", [1, 3, 40])
def test_weight_dtypes_equal_float32_on_the_stored_weights(isa, dtype, batch):
    # LSTM(dtype=...) packs every matrix (w_ih, w_hh, w_hr) as bf16 / int8; states and gates stay float32. So it
    # equals a float32 LSTM whose weights were rounded / quantized the same way (tests/reference.py, per torch
    # row: the gate interleaving moves whole rows, so each row keeps its own scales). batch 40 takes the
    # widened-panel path of the GEMMs, 1 and 3 the in-register one.
    lstm = LSTM(48, 70, num_layers=2, bidirectional=True, proj_size=20, batch_first=True, seed=3, dtype=dtype)
    assert lstm.dtype == dtype
    stored = {}
    for name, w in lstm.state_dict().items():
        if name.startswith("weight") and dtype == "bf16":
            w = ref.round_bf16(w)
        elif name.startswith("weight"):
            w = ref.dequantize_int8(*ref.quantize_int8(w)).astype(np.float32)
        stored[name] = w
    twin = LSTM(48, 70, num_layers=2, bidirectional=True, proj_size=20, batch_first=True)
    twin.load_state_dict(stored)
    x = rand(np.random.default_rng(batch), batch, 9, 48)
    lengths = np.random.default_rng(batch).integers(1, 10, batch)
    (out, (h, c)), (out2, (h2, c2)) = lstm(x, lengths=lengths), twin(x, lengths=lengths)
    for got, want in ((out, out2), (h, h2), (c, c2)):
        ref.assert_close(got, want, "lstm")


def test_unknown_weight_dtype():
    with pytest.raises(ValueError, match=r"dtype 'float16' is not supported; supported: float32, bf16, int8"):
        LSTM(4, 8, dtype="float16")
    with pytest.raises(ValueError, match=r"dtype must be one of 'float32', 'bf16', 'int8'; got 'int4'"):
        _core.PackedLSTM(4, 8, 1, False, 0, [(np.ones((32, 4), np.float32), np.ones((32, 8), np.float32), None,
                                               None, None)], "int4")
