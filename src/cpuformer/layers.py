"""Architecture-neutral building blocks that models assemble: linears packed from a WeightStore, layer norm,
embedding tables, the two token layouts attention runs on, and a self-attention block on a fused QKV projection.

The token layouts:
- `PackedBatch`: every sequence of a batch laid end to end in one [total_tokens, hidden] matrix, so GEMMs never
  touch padding and attention gets the sequence boundaries as `cu_seqlens` (encoders, and a decoder's forward).
- `KVCacheBatch`: the T newest tokens of B left-padded rows ([B, T, hidden]) whose keys and values go into a
  KV cache and whose queries attend to everything cached (generation).
- `KVCacheRows`: the same for chosen cache rows that advance independently (continuous batching: sequences join
  and leave a running batch, each at its own length, no padding).
All have `attend(layer, q, k, v, ...)`, so one SelfAttention and one block forward serve both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import ops
from .io import WeightStore

__all__ = [
    "Embedding",
    "KVCacheBatch",
    "KVCacheRows",
    "LayerNorm",
    "PackedBatch",
    "RMSNorm",
    "SelfAttention",
    "TiedEmbedding",
    "Workspace",
    "fused_activation",
    "pack_linear",
    "take_fused_linear",
    "take_linear",
]

# Hugging Face `hidden_act` names -> the activation fused into the GEMM store. gelu_new, gelu_fast and
# gelu_pytorch_tanh are all the tanh approximation, written differently.
_HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}


def fused_activation(hidden_act: str) -> str:
    """The PackedLinear activation for a Hugging Face `hidden_act`; ValueError for one we do not fuse."""
    if not isinstance(hidden_act, str) or hidden_act not in _HF_ACTIVATIONS:
        raise ValueError(
            f"hidden_act {hidden_act!r} is not supported; supported: {', '.join(sorted(_HF_ACTIVATIONS))}"
        )
    return _HF_ACTIVATIONS[hidden_act]


def smooth_factors(norm: "LayerNorm", weight: np.ndarray) -> np.ndarray:
    """SmoothQuant factors for an int8 linear whose input is `norm`'s output, without calibration data: input
    feature j of a LayerNorm output is at most about |gamma_j| + |beta_j| (times the normalised value), so
    s_j = sqrt((|gamma_j| + |beta_j|) / max_i |W[i, j]|) evens out the per-channel ranges of x / s and W * s (alpha
    0.5). Measured on all-MiniLM-L6-v2, 1,000 real sentences, int8 compute with groups of 64: min cosine vs float32
    0.99886 without, 0.99938 with."""
    x_range = np.abs(norm.weight).astype(np.float64) + np.abs(norm.bias)
    w_range = np.abs(weight).max(axis=0).astype(np.float64)
    s = np.ones(weight.shape[1])
    ok = (x_range > 0) & (w_range > 0)
    s[ok] = np.sqrt(x_range[ok] / w_range[ok])
    return np.clip(s, 1e-4, 1e4).astype(np.float32)


def pack_linear(store: WeightStore, weight: np.ndarray, bias: np.ndarray | None = None, *,
                input_norm: "LayerNorm | None" = None, **options) -> ops.PackedLinear:
    """Pack a linear once, in the dtype the model is loaded in (`store.linear_dtype`: float32, bf16 or int8 weights).
    input_norm: the LayerNorm whose output this linear reads; int8 weights are then smoothed by it."""
    if store.linear_dtype != "float32":
        options["dtype"] = store.linear_dtype
    if store.linear_dtype == "int8" and input_norm is not None and options.get("layout", "out_in") == "out_in":
        options["smooth"] = smooth_factors(input_norm, weight)
    return ops.PackedLinear(weight, bias, **options)


def take_linear(
    store: WeightStore,
    prefix: str,
    in_features: int,
    out_features: int,
    *,
    bias: bool = True,
    activation: str = "none",
    layout: str = "out_in",
    input_norm: "LayerNorm | None" = None,
) -> ops.PackedLinear:
    """`prefix.weight` ([out, in], or [in, out] with layout="in_out") and `prefix.bias`, packed once."""
    shape = (out_features, in_features) if layout == "out_in" else (in_features, out_features)
    weight = store.take(f"{prefix}.weight", shape, packed=True)
    b = store.take(f"{prefix}.bias", (out_features,), packed=True) if bias else None
    return pack_linear(store, weight, b, activation=activation, layout=layout, input_norm=input_norm)


def take_fused_linear(
    store: WeightStore,
    prefixes: Sequence[str],
    in_features: int,
    out_features: int | Sequence[int],
    *,
    activation: str = "none",
    bias: bool = True,
    input_norm: "LayerNorm | None" = None,
) -> ops.PackedLinear:
    """Several [out, in] linears on the same input (Q, K, V; gate and up) stacked into one PackedLinear whose output
    is their outputs side by side: one GEMM instead of several, and x is read once. out_features: one size for
    all, or one per prefix (grouped-query attention's K and V are narrower than Q)."""
    sizes = [out_features] * len(prefixes) if isinstance(out_features, int) else list(out_features)
    weights = [store.take(f"{p}.weight", (n, in_features), packed=True) for p, n in zip(prefixes, sizes)]
    biases = [store.take(f"{p}.bias", (n,), packed=True) for p, n in zip(prefixes, sizes)] if bias else None
    # The only copy of these weights before packing; the mmap views stay untouched.
    return pack_linear(store, np.concatenate(weights), None if biases is None else np.concatenate(biases),
                       activation=activation, input_norm=input_norm)


class LayerNorm:
    """Layer norm over the last axis with the checkpoint's `prefix.weight` / `prefix.bias`."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, eps: float):
        self.weight, self.bias, self.eps = weight, bias, float(eps)

    @classmethod
    def from_store(cls, store: WeightStore, prefix: str, dim: int, eps: float) -> "LayerNorm":
        return cls(store.take(f"{prefix}.weight", (dim,)), store.take(f"{prefix}.bias", (dim,)), eps)

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return ops.layer_norm(x, self.weight, self.bias, self.eps, out=out)


class RMSNorm:
    """Llama's RMSNorm over the last axis (x * rsqrt(mean(x^2) + eps) * weight, fp32) with `prefix.weight`."""

    def __init__(self, weight: np.ndarray, eps: float):
        self.weight, self.eps = weight, float(eps)

    @classmethod
    def from_store(cls, store: WeightStore, prefix: str, dim: int, eps: float) -> "RMSNorm":
        return cls(store.take(f"{prefix}.weight", (dim,)), eps)

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return ops.rms_norm(x, self.weight, self.eps, out=out)


class Embedding:
    """A [num_embeddings, dim] lookup table (owned, or a view of the file with mmap=True)."""

    def __init__(self, table: np.ndarray):
        self.table = table

    @classmethod
    def from_store(cls, store: WeightStore, name: str, num: int, dim: int) -> "Embedding":
        return cls(store.take(name, (num, dim)))

    @property
    def num_embeddings(self) -> int:
        return self.table.shape[0]

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return ops.embedding(ids, self.table)


class TiedEmbedding:
    """An input embedding tied to an output head: rows are read from the head's packed weight (in its dtype), so
    the model keeps one copy of the [vocab, dim] matrix instead of a float32 table beside the packed head."""

    def __init__(self, head: ops.PackedLinear):
        self.head = head

    @property
    def num_embeddings(self) -> int:
        return self.head.out_features

    @property
    def table(self) -> np.ndarray:
        """The whole table as float32 (a copy; for inspection, not the forward pass)."""
        return self.head.weight

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return self.head.rows(ids)


@dataclass
class PackedBatch:
    """Where the real tokens of a padded [B, T] batch go in the packed [total_tokens, ...] layout.

    rows, cols: the (batch, column) of each real token, in order; cu_seqlens [B + 1] (int64): sequence b
    occupies packed rows cu_seqlens[b]:cu_seqlens[b + 1]."""

    rows: np.ndarray
    cols: np.ndarray
    cu_seqlens: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def from_mask(cls, attention_mask: np.ndarray) -> "PackedBatch":
        mask = np.asarray(attention_mask, dtype=bool)
        rows, cols = np.nonzero(mask)  # row-major: each sequence's tokens stay contiguous and in order
        cu = np.zeros(mask.shape[0] + 1, np.int64)
        np.cumsum(mask.sum(axis=1), out=cu[1:])
        return cls(rows, cols, cu, (mask.shape[0], mask.shape[1]))

    @classmethod
    def from_lengths(cls, lengths: Sequence[int]) -> "PackedBatch":
        lengths = np.asarray(lengths, np.int64)
        cu = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=cu[1:])
        rows = np.repeat(np.arange(len(lengths)), lengths)
        cols = np.arange(cu[-1], dtype=np.int64) - cu[rows]
        return cls(rows, cols, cu, (len(lengths), int(lengths.max(initial=0))))

    @property
    def total_tokens(self) -> int:
        return int(self.cu_seqlens[-1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.cu_seqlens)

    def gather(self, padded: np.ndarray) -> np.ndarray:
        """[B, T, ...] -> [total_tokens, ...] (the real tokens only)."""
        return padded[self.rows, self.cols]

    def scatter(self, packed: np.ndarray) -> np.ndarray:
        """[total_tokens, ...] -> [B, T, ...], zeros where there was padding."""
        out = np.zeros(self.shape + packed.shape[1:], packed.dtype)
        out[self.rows, self.cols] = packed
        return out

    def first_tokens(self, packed: np.ndarray) -> np.ndarray:
        """The first real token of each sequence: [B, ...] (the [CLS] position for right-padded input)."""
        return packed[self.cu_seqlens[:-1]]

    def attend(self, layer: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, num_heads: int, *, causal: bool,
               scale: float | None, out: np.ndarray, relative_bias: np.ndarray | None = None,
               num_kv_heads: int | None = None) -> np.ndarray:
        """Attention of each sequence's queries to its own keys (q: [total_tokens, heads * head_dim], k, v:
        [total_tokens, kv_heads * head_dim]). relative_bias: [heads, 2L - 1] added by relative position (see
        ops.multi_head_attention_varlen)."""
        return ops.multi_head_attention_varlen(q, k, v, self.cu_seqlens, num_heads, causal=causal, scale=scale,
                                               out=out, relative_bias=relative_bias, num_kv_heads=num_kv_heads)


class KVCacheBatch:
    """B left-padded rows decoding through an ops.KVCache: each forward appends its T newest tokens per row.

    key_mask: uint8 [B, max_len] (1 = token, 0 = left padding), made once per generate call, or None when no
    row is padded. `advance(T)` before running the layers on T new tokens; every layer then appends its keys
    and values and attends to the first `length` cached positions."""

    def __init__(self, cache: ops.KVCache, key_mask: np.ndarray | None = None):
        self.cache, self.key_mask, self.length = cache, key_mask, 0

    def advance(self, new_tokens: int) -> None:
        if self.length + new_tokens > self.cache.max_len:
            raise ValueError(f"{self.length} cached + {new_tokens} new tokens exceed the cache's max_len "
                             f"{self.cache.max_len}")
        self.length += new_tokens

    def attend(self, layer: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, num_heads: int, *, causal: bool,
               scale: float | None, out: np.ndarray, relative_bias: np.ndarray | None = None,
               num_kv_heads: int | None = None) -> np.ndarray:
        """q, k, v: [B, T, heads * head_dim] of the newest tokens -> context [B, T, heads * head_dim]. The cache
        knows its KV heads (num_kv_heads is the cache's)."""
        if relative_bias is not None:
            raise ValueError("a relative position bias is not supported with a KV cache")
        self.cache.append(layer, k, v)
        mask = None if self.key_mask is None else self.key_mask[:, :self.length]
        return self.cache.attend(layer, q, mask, causal=causal, scale=scale, out=out)


class KVCacheRows:
    """Sequences decoding through chosen rows of an ops.KVCache: input sequence i is cache row rows[i], with its
    own cached length (no padding, no mask). The cache checks every row's room when keys are appended."""

    def __init__(self, cache: ops.KVCache, rows: np.ndarray):
        self.cache, self.rows = cache, np.ascontiguousarray(rows, np.int64)

    def advance(self, new_tokens: int) -> None:
        """Nothing to track here: each row's length lives in the cache."""

    def attend(self, layer: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, num_heads: int, *, causal: bool,
               scale: float | None, out: np.ndarray, relative_bias: np.ndarray | None = None,
               num_kv_heads: int | None = None) -> np.ndarray:
        """q, k, v: [len(rows), T, heads * head_dim] of the newest tokens -> context of the same shape (k, v with
        the cache's KV heads)."""
        if relative_bias is not None:
            raise ValueError("a relative position bias is not supported with a KV cache")
        self.cache.append(layer, k, v, rows=self.rows)
        return self.cache.attend(layer, q, causal=causal, scale=scale, out=out, rows=self.rows)


class SelfAttention:
    """out(attention(qkv(x))) + residual, with Q, K, V from ONE fused projection ([(H + 2 KVH) * head_dim, in]).

    Runs on either token layout (PackedBatch or KVCacheBatch: the batch decides where keys and values come from),
    so an architecture writes its block forward once. Attention reads Q, K and V as row-strided column slices of
    the fused output, so nothing is copied between the projection and the attention kernel. `layer` is this
    layer's index in a KV cache. num_kv_heads < num_heads is grouped-query attention (K and V have fewer heads);
    `rotary` (a RotaryEmbedding) rotates Q and K in place in the fused output by the tokens' positions."""

    def __init__(self, qkv: ops.PackedLinear, out: ops.PackedLinear, num_heads: int, scale: float | None = None, *,
                 causal: bool = False, layer: int = 0, num_kv_heads: int | None = None,
                 rotary: "RotaryEmbedding | None" = None):
        kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if kv_heads == num_heads:
            if qkv.out_features % 3 or (qkv.out_features // 3) % num_heads:
                raise ValueError(
                    f"fused QKV has {qkv.out_features} outputs; expected 3 * hidden with hidden divisible by "
                    f"num_heads={num_heads}"
                )
        elif kv_heads < 1 or num_heads % kv_heads or qkv.out_features % (num_heads + 2 * kv_heads):
            raise ValueError(
                f"fused QKV has {qkv.out_features} outputs; expected (num_heads + 2 * num_kv_heads) * head_dim with "
                f"num_heads={num_heads} and num_kv_heads={kv_heads} (dividing num_heads)"
            )
        self.qkv, self.out, self.num_heads, self.scale = qkv, out, num_heads, scale
        self.causal, self.layer, self.num_kv_heads, self.rotary = causal, layer, kv_heads, rotary
        self.head_dim = qkv.out_features // (num_heads + 2 * kv_heads)
        self.hidden = num_heads * self.head_dim  # the width of Q and of the attention output
        self.kv_hidden = kv_heads * self.head_dim

    def __call__(
        self,
        x: np.ndarray,
        batch: "PackedBatch | KVCacheBatch | KVCacheRows",
        *,
        residual: np.ndarray | None = None,
        workspace: "Workspace | None" = None,
        relative_bias: np.ndarray | None = None,
        positions: np.ndarray | None = None,
    ) -> np.ndarray:
        """x: [total_tokens, in] (PackedBatch) or [B, T, in] (KVCacheBatch) -> the same rows, out_features wide.
        relative_bias: MPNet's per-head bias by relative position, [heads, 2L - 1] (PackedBatch only).
        positions: the tokens' positions (x's token axes), needed with a rotary embedding."""
        ws = workspace or Workspace()
        rows, h, kv = x.shape[:-1], self.hidden, self.kv_hidden
        qkv = self.qkv(x, out=ws.get("qkv", rows + (h + 2 * kv,)))
        if self.rotary is not None:
            if positions is None:
                raise ValueError("positions are needed for rotary position embeddings")
            self.rotary(qkv[..., :h + kv], positions)  # Q and K where the projection wrote them
        # num_kv_heads only when grouped, so token layouts without grouped-query support still serve the rest
        grouped = {} if self.num_kv_heads == self.num_heads else {"num_kv_heads": self.num_kv_heads}
        context = batch.attend(self.layer, qkv[..., :h], qkv[..., h:h + kv], qkv[..., h + kv:], self.num_heads,
                               causal=self.causal, scale=self.scale, out=ws.get("context", rows + (h,)),
                               relative_bias=relative_bias, **grouped)
        return self.out(context, residual=residual, out=ws.get("attn_out", rows + (self.out.out_features,)))


class Workspace:
    """Named float32 scratch buffers reused by every layer of one forward pass (allocated once per shape,
    so large activations do not page-fault afresh in each layer). Not shared between calls or threads."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape, np.float32)
        return buf
