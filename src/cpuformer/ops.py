"""Core ops on numpy float32 arrays, backed by the C++ kernels.

Every op takes float32 arrays (any other dtype is a TypeError: convert explicitly), copies a non-contiguous
input once rather than failing, releases the GIL while it computes, and uses ``cpuformer.get_num_threads()``
threads.
"""
from ._core import (
    KVCache,
    PackedLSTM,
    PackedLinear,
    PackedRecurrent,
    activation,
    embedding,
    embedding_bag,
    gelu,
    layer_norm,
    linear,
    lstm_cell,
    multi_head_attention,
    multi_head_attention_varlen,
    rms_norm,
    rotary_embedding,
    silu_mul,
    softmax,
    top_k_dot,
)

__all__ = [
    "KVCache",
    "PackedLSTM",
    "PackedLinear",
    "PackedRecurrent",
    "activation",
    "embedding",
    "embedding_bag",
    "gelu",
    "layer_norm",
    "linear",
    "lstm_cell",
    "multi_head_attention",
    "multi_head_attention_varlen",
    "rms_norm",
    "rotary_embedding",
    "silu_mul",
    "softmax",
    "top_k_dot",
]
