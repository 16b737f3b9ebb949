"""cpuformer.nn.LSTM / GRU / RNN and the cells vs torch's (in process, same thread count) on the same weights and
inputs.

Layer groups: single-sequence latency (B = 1), a batched 2-layer stack, a bidirectional layer, and a variable-length
bidirectional batch (torch through pack_padded_sequence / pad_packed_sequence, ours through `lengths`), for the
LSTM and the GRU; latency and batch for the tanh RNN. Cell groups: one step of LSTMCell / GRUCell / RNNCell, as a
Python loop over a sequence would call it (ours keeps its weights packed between calls).
"""
from __future__ import annotations

import numpy as np
import pytest

from cpuformer.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
CELLS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}
TORCH_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}

CASES = {
    # name: (kind, steps, batch, input, hidden, layers, bidirectional, variable lengths)
    "latency T100 B1 H256": ("lstm", 100, 1, 256, 256, 1, False, False),
    "batch T100 B32 H512 2-layer": ("lstm", 100, 32, 512, 512, 2, False, False),
    "bidir T100 B32 H512": ("lstm", 100, 32, 512, 512, 1, True, False),
    "varlen bidir T100 B32 H256": ("lstm", 100, 32, 256, 256, 1, True, True),
    "gru latency T100 B1 H256": ("gru", 100, 1, 256, 256, 1, False, False),
    "gru batch T100 B32 H512 2-layer": ("gru", 100, 32, 512, 512, 2, False, False),
    "gru bidir T100 B32 H512": ("gru", 100, 32, 512, 512, 1, True, False),
    "gru varlen bidir T100 B32 H256": ("gru", 100, 32, 256, 256, 1, True, True),
    "rnn latency T100 B1 H256": ("rnn", 100, 1, 256, 256, 1, False, False),
    "rnn batch T100 B32 H512 2-layer": ("rnn", 100, 32, 512, 512, 2, False, False),
}
CELL_CASES = {
    # name: (kind, batch, input, hidden)
    "lstm_cell B1 H256": ("lstm", 1, 256, 256),
    "lstm_cell B32 H512": ("lstm", 32, 512, 512),
    "gru_cell B1 H256": ("gru", 1, 256, 256),
    "gru_cell B32 H512": ("gru", 32, 512, 512),
    "rnn_cell B32 H512": ("rnn", 32, 512, 512),
}


def _setup(name):
    kind, steps, batch, inp, hidden, layers, bidir, varlen = CASES[name]
    rng = np.random.default_rng(0)
    ours = LAYERS[kind](inp, hidden, num_layers=layers, bidirectional=bidir, seed=0)
    x = rng.standard_normal((steps, batch, inp), dtype=np.float32)
    lengths = rng.integers(steps // 4, steps + 1, batch) if varlen else None
    if varlen:
        lengths[0] = steps
    dirs = 2 if bidir else 1
    flop = 0.0
    for layer in range(layers):
        layer_in = inp if layer == 0 else dirs * hidden
        flop += 2.0 * steps * batch * dirs * GATES[kind] * hidden * (layer_in + hidden)
    return kind, ours, x, lengths, flop


def _torch_runner(kind, ours, x, lengths):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    ref = getattr(torch.nn, TORCH_NAMES[kind])(ours.input_size, ours.hidden_size, num_layers=ours.num_layers,
                                               bidirectional=ours.bidirectional).eval()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    xt = torch.from_numpy(x)
    if lengths is None:
        def run():
            with torch.inference_mode():
                return ref(xt)
        return run
    lt = torch.from_numpy(lengths)

    def run_packed():
        with torch.inference_mode():
            packed = pack_padded_sequence(xt, lt, enforce_sorted=False)
            out, state = ref(packed)
            return pad_packed_sequence(out, total_length=xt.shape[0])[0], state
    return run_packed


@pytest.mark.parametrize("name", list(CASES), ids=[n.replace(" ", "-") for n in CASES])
@pytest.mark.parametrize("impl", ["cpuformer", "torch"])
def test_lstm(benchmark, impl, name):
    kind, ours, x, lengths, flop = _setup(name)
    run = (lambda: ours(x, lengths=lengths)) if impl == "cpuformer" else _torch_runner(kind, ours, x, lengths)
    if impl == "torch":  # same weights, same answer: the comparison is apples to apples
        got, want = ours(x, lengths=lengths)[0], run()[0].numpy()
        assert np.max(np.abs(got - want)) < 1e-4
    steps, batch = x.shape[:2]
    benchmark.group = f"{'lstm ' if kind == 'lstm' else ''}{name}"
    benchmark.extra_info.update(impl=impl, steps=steps, batch=batch)
    benchmark.pedantic(run, rounds=7 if batch == 1 else 4, iterations=3 if batch == 1 else 1, warmup_rounds=1)
    median = benchmark.stats.stats.median
    benchmark.extra_info["gflops"] = flop / median / 1e9
    benchmark.extra_info["rate"] = f"{steps * batch / median:,.0f} tokens/s, {flop / median / 1e9:.1f} GFLOP/s"


@pytest.mark.parametrize("name", list(CELL_CASES), ids=[n.replace(" ", "-") for n in CELL_CASES])
@pytest.mark.parametrize("impl", ["cpuformer", "torch"])
def test_cell_step(benchmark, impl, name):
    kind, batch, inp, hidden = CELL_CASES[name]
    rng = np.random.default_rng(0)
    ours = CELLS[kind](inp, hidden, seed=0)
    x, h = rng.standard_normal((batch, inp), dtype=np.float32), rng.standard_normal((batch, hidden), dtype=np.float32)
    hx = (h, h.copy()) if kind == "lstm" else h
    if impl == "cpuformer":
        def run():
            return ours(x, hx)
    else:
        import torch

        ref = getattr(torch.nn, TORCH_NAMES[kind] + "Cell")(inp, hidden).eval()
        ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
        xt = torch.from_numpy(x)
        hxt = tuple(torch.from_numpy(a) for a in hx) if kind == "lstm" else torch.from_numpy(hx)

        def run():
            with torch.inference_mode():
                return ref(xt, hxt)
        got, want = ours(x, hx), run()
        got, want = (got[0], want[0]) if kind == "lstm" else (got, want)
        assert np.max(np.abs(got - want.numpy())) < 1e-4
    flop = 2.0 * batch * GATES[kind] * hidden * (inp + hidden)
    benchmark.group = f"cell step {name}"
    benchmark.extra_info.update(impl=impl, batch=batch)
    benchmark.pedantic(run, rounds=20, iterations=20, warmup_rounds=2)
    median = benchmark.stats.stats.median
    benchmark.extra_info["rate"] = f"{median * 1e6:,.1f} us/step, {flop / median / 1e9:.1f} GFLOP/s"
