"""torch.nn.GRU / RNN and the LSTMCell / GRUCell / RNNCell state_dicts, inputs and outputs for test_gru_rnn.py and
test_cells.py, made in a separate process (tests/torch_reference.py): `make_reference(folder, cases)` runs this
file as a script.

Layer cases: dicts with name, mode ("GRU", "RNN_TANH", "RNN_RELU"), input_size, hidden_size, steps, batch,
num_layers, bidirectional, batch_first, bias. Outputs "sd.<param>", "x", "h0", "lengths" and "<mode>.out" /
"<mode>.h_n" for the modes plain, hx, lengths, hx_lengths, unbatched, unbatched_hx.
Cell cases: dicts with name, cell ("LSTMCell", "GRUCell", "RNNCell_tanh", "RNNCell_relu"), input_size, hidden_size,
batch, bias. Outputs "sd.<param>", "x", "h", "c" and "<mode>.h" (and "<mode>.c" for LSTMCell) for the modes plain,
hx, unbatched, unbatched_hx. Case i is seeded with i.
"""
from __future__ import annotations

from pathlib import Path

from torch_reference import run_reference_arrays, serve_arrays


def _layer_case(torch, index, case):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(index)
    common = dict(num_layers=case["num_layers"], bias=case["bias"], batch_first=case["batch_first"],
                  bidirectional=case["bidirectional"])
    if case["mode"] == "GRU":
        net = torch.nn.GRU(case["input_size"], case["hidden_size"], **common)
    else:
        net = torch.nn.RNN(case["input_size"], case["hidden_size"],
                           nonlinearity="tanh" if case["mode"] == "RNN_TANH" else "relu", **common)
    net.eval()
    T, B = case["steps"], case["batch"]
    dirs = 2 if case["bidirectional"] else 1
    shape = (B, T, case["input_size"]) if case["batch_first"] else (T, B, case["input_size"])
    out_case = {"sd." + k: v.detach().numpy() for k, v in net.state_dict().items()}
    x = torch.randn(shape)
    h0 = torch.randn(case["num_layers"] * dirs, B, case["hidden_size"])
    lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(index))
    lengths[0] = T  # one full-length sequence
    out_case.update(x=x.numpy(), h0=h0.numpy(), lengths=lengths.numpy())
    with torch.no_grad():
        for mode in ("plain", "hx", "lengths", "hx_lengths"):
            hx = h0 if "hx" in mode else None
            if "lengths" in mode:
                packed = pack_padded_sequence(x, lengths, batch_first=case["batch_first"], enforce_sorted=False)
                out, h_n = net(packed, hx)
                out, _ = pad_packed_sequence(out, batch_first=case["batch_first"], total_length=T)
            else:
                out, h_n = net(x, hx)
            out_case.update({f"{mode}.out": out.numpy(), f"{mode}.h_n": h_n.numpy()})
        x1 = x[0] if case["batch_first"] else x[:, 0]  # the first sequence alone, [T, I]
        for mode, hx in (("unbatched", None), ("unbatched_hx", h0[:, 0])):
            out, h_n = net(x1, hx)
            out_case.update({f"{mode}.out": out.numpy(), f"{mode}.h_n": h_n.numpy()})
    return out_case


def _cell_case(torch, index, case):
    torch.manual_seed(index)
    kind, args = case["cell"], (case["input_size"], case["hidden_size"], case["bias"])
    if kind.startswith("RNNCell"):
        cell = torch.nn.RNNCell(*args, nonlinearity=kind.split("_")[1])
    else:
        cell = getattr(torch.nn, kind)(*args)
    cell.eval()
    B, H = case["batch"], case["hidden_size"]
    out_case = {"sd." + k: v.detach().numpy() for k, v in cell.state_dict().items()}
    x, h, c = torch.randn(B, case["input_size"]), torch.randn(B, H), torch.randn(B, H)
    out_case.update(x=x.numpy(), h=h.numpy(), c=c.numpy())
    lstm = kind == "LSTMCell"
    with torch.no_grad():
        for mode, xi, hx in (("plain", x, None), ("hx", x, (h, c) if lstm else h), ("unbatched", x[0], None),
                             ("unbatched_hx", x[0], (h[0], c[0]) if lstm else h[0])):
            result = cell(xi, hx)
            if lstm:
                out_case.update({f"{mode}.h": result[0].numpy(), f"{mode}.c": result[1].numpy()})
            else:
                out_case[f"{mode}.h"] = result.numpy()
    return out_case


def torch_recurrent(inputs, cases):
    import torch

    arrays = {}
    for index, case in enumerate(cases):
        out_case = _cell_case(torch, index, case) if "cell" in case else _layer_case(torch, index, case)
        arrays.update({f"{case['name']}/{key}": value for key, value in out_case.items()})
    return arrays


def make_reference(folder: Path, cases) -> dict[str, dict]:
    arrays = run_reference_arrays(__file__, folder, params=cases)
    by_case: dict[str, dict] = {case["name"]: {} for case in cases}
    for key, value in arrays.items():
        name, _, field = key.partition("/")
        by_case[name][field] = value
    return by_case


if __name__ == "__main__":
    serve_arrays(torch_recurrent)
