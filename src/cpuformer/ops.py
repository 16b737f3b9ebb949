"""Core ops on numpy float32 arrays, backed by the C++ kernels.

Every op takes float32 arrays (any other dtype is a TypeError: convert explicitly), copies a non-contiguous
input once rather than failing, releases the GIL while it computes, and uses ``cpuformer.get_num_threads()``
threads.
"""
from ._core import PackedLinear, activation, embedding, embedding_bag, gelu, layer_norm, linear, softmax
from ._core import top_k_dot
from ._core import KVCache, multi_head_attention, multi_head_attention_varlen
from ._core import PackedLSTM, lstm_cell

__all__ = ["PackedLinear", "activation", "embedding", "embedding_bag", "gelu", "layer_norm", "linear", "softmax"]
__all__ += ["top_k_dot"]
__all__ += ["KVCache", "multi_head_attention", "multi_head_attention_varlen"]
__all__ += ["PackedLSTM", "lstm_cell"]
