"""torch.topk of score matrices for test_top_k.py, made in a separate process (tests/torch_reference.py):
`make_reference(folder, inputs, ks)` runs this file as a script.

inputs: "{name}" float32 score matrices [q, n]; params: {name: k}. Returns "{name}.indices" and "{name}.values".
"""
from __future__ import annotations

from pathlib import Path

from torch_reference import run_reference_arrays, serve_arrays


def topk(inputs, ks):
    import torch

    outputs = {}
    for name, k in ks.items():
        values, indices = torch.topk(torch.from_numpy(inputs[name]), k, dim=1, largest=True, sorted=True)
        outputs[f"{name}.values"], outputs[f"{name}.indices"] = values.numpy(), indices.numpy()
    return outputs


def make_reference(folder: Path, inputs, ks) -> dict:
    return run_reference_arrays(__file__, folder, inputs, ks)


if __name__ == "__main__":
    serve_arrays(topk)
