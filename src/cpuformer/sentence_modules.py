"""What a sentence-transformers folder does after pooling, and to the embeddings it returns: Dense modules,
quantized embedding output (`quantize_embeddings`) and the similarity functions, each as sentence-transformers
defines it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .io import WeightStore, read_folder_json
from .layers import pack_linear

__all__ = ["DenseModule", "PRECISIONS", "SIMILARITY_FUNCTIONS", "quantize_embeddings", "similarity"]

# Dense's activation_function (a torch import path) -> (activation fused into the GEMM, numpy function after it)
_DENSE_ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": ("none", None),
    "torch.nn.modules.activation.Tanh": ("none", np.tanh),
    "torch.nn.modules.activation.ReLU": ("relu", None),
    "torch.nn.modules.activation.GELU": ("gelu", None),
    "torch.nn.modules.activation.Sigmoid": ("none", lambda x: 1.0 / (1.0 + np.exp(-x))),
}


class DenseModule:
    """sentence-transformers' Dense: activation(linear(x)) on the sentence embedding (`linear.weight` [out, in],
    `linear.bias`), from its folder's config.json and model.safetensors."""

    def __init__(self, linear, activation: str):
        fused, after = _DENSE_ACTIVATIONS[activation]
        self.linear, self.activation, self._after = linear, activation, after

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, dtype: str = "float32") -> "DenseModule":
        folder = Path(folder)
        config = read_folder_json(folder, "config.json")
        if not isinstance(config, dict):
            raise ValueError(f"{folder / 'config.json'} must hold a JSON object")
        activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
        if not isinstance(activation, str) or activation not in _DENSE_ACTIVATIONS:
            raise ValueError(f"{folder / 'config.json'}: Dense activation_function {activation!r} is not supported; "
                             f"supported: {', '.join(_DENSE_ACTIVATIONS)}")
        n_in, n_out = config.get("in_features"), config.get("out_features")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in (n_in, n_out)):
            raise ValueError(f"{folder / 'config.json'} needs positive integer in_features and out_features, got "
                             f"{n_in!r} and {n_out!r}")
        if not isinstance(config.get("bias", True), bool):
            raise ValueError(f"{folder / 'config.json'}: bias must be true or false, got {config['bias']!r}")
        store = WeightStore(folder)
        store.linear_dtype = dtype
        weight = store.take("linear.weight", (n_out, n_in), packed=True)
        bias = store.take("linear.bias", (n_out,), packed=True) if config.get("bias", True) else None
        store.assert_all_used()
        return cls(pack_linear(store, weight, bias, activation=_DENSE_ACTIVATIONS[activation][0]), activation)

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = self.linear(np.ascontiguousarray(x, dtype=np.float32))
        return self._after(y).astype(np.float32) if self._after is not None else y


PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def quantize_embeddings(embeddings: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """sentence-transformers' quantize_embeddings: int8 / uint8 by 256 buckets per dimension between the
    dimension's min and max (`ranges` [2, dim], else over these embeddings), binary / ubinary by packing the
    signs (x > 0) into bits (binary: minus 128, as int8)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    emb = np.asarray(embeddings)
    if precision == "float32":
        return emb.astype(np.float32)
    if precision.endswith("int8"):
        if ranges is None:
            if emb.ndim == 1 or emb.shape[0] == 1:
                raise ValueError(f"cannot compute {precision} quantization ranges from a single embedding; pass "
                                 "ranges [2, dim] (min and max per dimension) from a representative set")
            ranges = np.vstack((emb.min(axis=0), emb.max(axis=0)))
        ranges = np.asarray(ranges, np.float32)
        starts = ranges[0]
        steps = (ranges[1] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        buckets = np.clip(np.floor((emb - starts) / steps), 0, 255)
        return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
    bits = np.packbits(emb > 0, axis=-1)
    return bits if precision == "ubinary" else (bits.astype(np.int16) - 128).astype(np.int8)


SIMILARITY_FUNCTIONS = ("cosine", "dot", "euclidean", "manhattan")


def similarity(a: Any, b: Any, function: str = "cosine") -> np.ndarray:
    """[len(a), len(b)] float32 similarities, as sentence-transformers' cos_sim / dot_score / euclidean_sim
    (minus the L2 distance) / manhattan_sim (minus the L1 distance). 1-D inputs count as one embedding."""
    if function not in SIMILARITY_FUNCTIONS:
        raise ValueError(f"similarity function must be one of {', '.join(SIMILARITY_FUNCTIONS)}; got {function!r}")
    x, y = (np.atleast_2d(np.asarray(v, np.float32)) for v in (a, b))
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"similarity needs [n, dim] and [m, dim] embeddings of one dim, got {x.shape} and {y.shape}")
    if function == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        return x @ y.T
    if function == "dot":
        return x @ y.T
    diff = x[:, None, :].astype(np.float64) - y[None, :, :]
    dist = np.abs(diff).sum(-1) if function == "manhattan" else np.sqrt((diff * diff).sum(-1))
    return (-dist).astype(np.float32)
