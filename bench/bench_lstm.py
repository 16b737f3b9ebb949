"""cpuformer.nn.LSTM vs torch.nn.LSTM (in process, same thread count) on the same weights and inputs.

Groups: single-sequence latency (B = 1), a batched 2-layer stack, a bidirectional layer, and a variable-length
bidirectional batch (torch through pack_padded_sequence / pad_packed_sequence, ours through `lengths`).
"""
from __future__ import annotations

import numpy as np
import pytest

from cpuformer.nn import LSTM

CASES = {
    # name: (steps, batch, input, hidden, layers, bidirectional, variable lengths)
    "latency T100 B1 H256": (100, 1, 256, 256, 1, False, False),
    "batch T100 B32 H512 2-layer": (100, 32, 512, 512, 2, False, False),
    "bidir T100 B32 H512": (100, 32, 512, 512, 1, True, False),
    "varlen bidir T100 B32 H256": (100, 32, 256, 256, 1, True, True),
}


def _setup(name):
    steps, batch, inp, hidden, layers, bidir, varlen = CASES[name]
    rng = np.random.default_rng(0)
    ours = LSTM(inp, hidden, num_layers=layers, bidirectional=bidir, seed=0)
    x = rng.standard_normal((steps, batch, inp), dtype=np.float32)
    lengths = rng.integers(steps // 4, steps + 1, batch) if varlen else None
    if varlen:
        lengths[0] = steps
    dirs = 2 if bidir else 1
    flop = 0.0
    for layer in range(layers):
        layer_in = inp if layer == 0 else dirs * hidden
        flop += 2.0 * steps * batch * dirs * 4 * hidden * (layer_in + hidden)
    return ours, x, lengths, flop


def _torch_runner(ours, x, lengths):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    ref = torch.nn.LSTM(ours.input_size, ours.hidden_size, num_layers=ours.num_layers,
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
    ours, x, lengths, flop = _setup(name)
    run = (lambda: ours(x, lengths=lengths)) if impl == "cpuformer" else _torch_runner(ours, x, lengths)
    if impl == "torch":  # same weights, same answer: the comparison is apples to apples
        got, want = ours(x, lengths=lengths)[0], run()[0].numpy()
        assert np.max(np.abs(got - want)) < 1e-4
    steps, batch = x.shape[:2]
    benchmark.group = f"lstm {name}"
    benchmark.extra_info.update(impl=impl, steps=steps, batch=batch)
    benchmark.pedantic(run, rounds=7 if batch == 1 else 4, iterations=3 if batch == 1 else 1, warmup_rounds=1)
    median = benchmark.stats.stats.median
    benchmark.extra_info["gflops"] = flop / median / 1e9
    benchmark.extra_info["rate"] = f"{steps * batch / median:,.0f} tokens/s, {flop / median / 1e9:.1f} GFLOP/s"
