"""torch.nn.functional.scaled_dot_product_attention outputs for test_attention.py, made in a separate process
(tests/torch_reference.py): `make_reference(folder, inputs, cases)` runs this file as a script.

inputs: "{name}.q", "{name}.k", "{name}.v" [B, T, H*D] and optional "{name}.mask" [B, Tk] of 0/1; cases: a list of
{"name", "num_heads", "causal", "scale"}. Returns {name: output [B, Tq, H*D]}.
"""
from __future__ import annotations

from pathlib import Path

from torch_reference import run_reference_arrays, serve_arrays


def sdpa(inputs, cases):
    import torch

    F = torch.nn.functional
    outputs = {}
    for case in cases:
        name, heads = case["name"], case["num_heads"]
        q, k, v = (torch.from_numpy(inputs[f"{name}.{x}"]) for x in "qkv")
        (batch, tq, hidden), tk = q.shape, k.shape[1]
        split = lambda x, t: x.view(batch, t, heads, hidden // heads).transpose(1, 2)  # noqa: E731
        visible = torch.ones(batch, 1, tq, tk, dtype=torch.bool)
        if f"{name}.mask" in inputs:
            visible &= torch.from_numpy(inputs[f"{name}.mask"]).bool()[:, None, None, :]
        if case["causal"]:
            visible &= torch.ones(tq, tk, dtype=torch.bool).tril(tk - tq)
        out = F.scaled_dot_product_attention(split(q, tq), split(k, tk), split(v, tk), attn_mask=visible,
                                             scale=case["scale"])
        outputs[name] = out.transpose(1, 2).reshape(batch, tq, hidden).numpy()
    return outputs


def make_reference(folder: Path, inputs, cases) -> dict:
    return run_reference_arrays(__file__, folder, inputs, cases)


if __name__ == "__main__":
    serve_arrays(sdpa)
