"""torch.nn.LSTM state_dicts, inputs and outputs for test_lstm.py, made in a separate process
(tests/torch_reference.py): `make_reference(folder, cases)` runs this file as a script.

cases: a list of dicts with name, input_size, hidden_size, steps, batch, num_layers, bidirectional, batch_first,
proj_size, bias. Case i is seeded with i. Returns {case name: {"sd.<param>", "x", "h0", "c0", "lengths",
"<mode>.out" / ".h_n" / ".c_n" for the modes plain, hx, lengths, hx_lengths, unbatched, unbatched_hx}}.
"""
from __future__ import annotations

from pathlib import Path

from torch_reference import run_reference_arrays, serve_arrays


def torch_lstm(inputs, cases):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    arrays = {}
    for index, case in enumerate(cases):
        torch.manual_seed(index)
        lstm = torch.nn.LSTM(case["input_size"], case["hidden_size"], num_layers=case["num_layers"],
                             bias=case["bias"], batch_first=case["batch_first"],
                             bidirectional=case["bidirectional"], proj_size=case["proj_size"]).eval()
        T, B = case["steps"], case["batch"]
        dirs = 2 if case["bidirectional"] else 1
        h_out = case["proj_size"] or case["hidden_size"]
        shape = (B, T, case["input_size"]) if case["batch_first"] else (T, B, case["input_size"])
        out_case = {"sd." + k: v.detach().numpy() for k, v in lstm.state_dict().items()}
        x = torch.randn(shape)
        h0 = torch.randn(case["num_layers"] * dirs, B, h_out)
        c0 = torch.randn(case["num_layers"] * dirs, B, case["hidden_size"])
        gen = torch.Generator().manual_seed(index)
        lengths = torch.randint(1, T + 1, (B,), generator=gen)
        lengths[0] = T  # one full-length sequence
        out_case.update(x=x.numpy(), h0=h0.numpy(), c0=c0.numpy(), lengths=lengths.numpy())
        with torch.no_grad():
            for mode in ("plain", "hx", "lengths", "hx_lengths"):
                hx = (h0, c0) if "hx" in mode else None
                if "lengths" in mode:
                    packed = pack_padded_sequence(x, lengths, batch_first=case["batch_first"], enforce_sorted=False)
                    out, (h_n, c_n) = lstm(packed, hx)
                    out, _ = pad_packed_sequence(out, batch_first=case["batch_first"], total_length=T)
                else:
                    out, (h_n, c_n) = lstm(x, hx)
                out_case.update({f"{mode}.out": out.numpy(), f"{mode}.h_n": h_n.numpy(), f"{mode}.c_n": c_n.numpy()})
            # Unbatched: the first sequence alone, time-major [T, I], with and without hx.
            x1 = x[0] if case["batch_first"] else x[:, 0]
            out, (h_n, c_n) = lstm(x1)
            out_case.update({"unbatched.out": out.numpy(), "unbatched.h_n": h_n.numpy(), "unbatched.c_n": c_n.numpy()})
            out, (h_n, c_n) = lstm(x1, (h0[:, 0], c0[:, 0]))
            out_case.update({"unbatched_hx.out": out.numpy(), "unbatched_hx.h_n": h_n.numpy(),
                             "unbatched_hx.c_n": c_n.numpy()})
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
    serve_arrays(torch_lstm)
