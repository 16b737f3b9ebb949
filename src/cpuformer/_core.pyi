"""
cpuformer C++ core: runtime-dispatched SIMD kernels, packed GEMM, fused ops.
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['KVCache', 'PackedLSTM', 'PackedLinear', 'PackedRecurrent', 'activation', 'embedding', 'embedding_bag', 'gelu', 'get_num_threads', 'layer_norm', 'linear', 'lstm_cell', 'multi_head_attention', 'multi_head_attention_varlen', 'rms_norm', 'rotary_embedding', 'set_num_threads', 'silu_mul', 'softmax', 'top_k_dot']
class _HeldThreads:
    def __init__(self, wanted: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def release(self) -> None:
        ...
    @property
    def threads(self) -> int:
        ...
class PackedLinear:
    """
    A linear layer y = act(x @ W.T + b) + residual whose weight is packed once into SIMD panels.
    
    weight: float32 [out_features, in_features] (layout="out_in", as nn.Linear) or [in, out] (layout="in_out",
    as GPT-2's Conv1D). The packing targets the ISA active at construction and keeps using it.
    activation: "none" | "gelu" (exact erf) | "gelu_tanh" | "relu", fused into the store of the result.
    dtype: how the weight is stored; activations and sums stay float32 (weight-only), then bias, activation and
    residual as for float32.
      "float32": as given.
      "bf16": rounded to the nearest bfloat16 (ties to even), widened back to float32 in registers: half the
              weight bytes, relative error <= 2^-9 per weight.
      "int8": symmetric, one scale per output feature and group of group_size inputs: scale[n, g] =
              max|W[n, group g]| / 127, q = round-half-even(W / scale) in [-127, 127], W ~= q * scale; a quarter of
              the weight bytes. group_size=0 gives one scale per output feature. Calls with fewer than 16 rows
              (decode) run weight-only (float32 activations); from 16 rows on, int8 compute: each row of x is
              quantized per group of group_size inputs to u8 with a zero point, and the int8 products are summed
              exactly in int32 per group (cpuformer.show_config() names the kernel).
    smooth: int8 only, optional float32 [in_features] of positive factors s: W[:, j] * s[j] is quantized and x[:, j]
            / s[j] multiplied (SmoothQuant), moving input channels' outliers from the activations into the weights.
    top_k is float32 only.
    """
    def __call__(self, x: typing.Any, *, residual: typing.Any = None, out: typing.Any = None, activation: typing.Any = None) -> numpy.ndarray:
        """
        x: float32 [..., in_features] -> [..., out_features]. residual (same shape as the output) is added after the activation. out: optional preallocated C-contiguous result. Releases the GIL.
        """
    def __init__(self, weight: typing.Any, bias: typing.Any = None, activation: str = 'none', layout: str = 'out_in', dtype: str = 'float32', *, group_size: typing.SupportsInt | typing.SupportsIndex = 64, smooth: typing.Any = None) -> None:
        ...
    def __repr__(self) -> str:
        ...
    def rows(self, ids: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        """
        weight[ids] (rows of [out_features, in_features], as stored: bf16 / int8 dequantized): ids of any shape and integer dtype -> ids.shape + (in_features,). A tied embedding reads its rows from the packed head instead of keeping a second float32 table.
        """
    def top_k(self, queries: typing.Any, k: typing.SupportsInt | typing.SupportsIndex, exclude: typing.Any = None) -> tuple:
        """
        The k largest entries of each row of queries @ W.T (+ bias) without storing the full score matrix: returns (indices int64 [q, min(k, out_features)], scores float32), best first, ties in ascending index. exclude: optional int array [q, e] of columns never returned for that row (-1 = no entry). The order is torch.topk's: NaN scores rank above +inf (NaN in, NaN out), -inf is a score like any other. Rows with fewer columns left after exclude are padded with index -1 and score -inf.
        """
    @property
    def activation(self) -> str:
        ...
    @property
    def bias(self) -> typing.Any:
        ...
    @property
    def dtype(self) -> str:
        """
        How the weight is stored: 'float32', 'bf16' or 'int8'.
        """
    @property
    def group_size(self) -> typing.Any:
        """
        int8: input features per scale (in_features when there is one scale per output feature); else None.
        """
    @property
    def has_bias(self) -> bool:
        ...
    @property
    def in_features(self) -> int:
        ...
    @property
    def isa(self) -> str:
        ...
    @property
    def nbytes(self) -> int:
        """
        Bytes of packed weight, scales and bias this layer holds.
        """
    @property
    def out_features(self) -> int:
        ...
    @property
    def quantized_weight(self) -> tuple[numpy.typing.NDArray[numpy.int8], numpy.typing.NDArray[numpy.float32]]:
        """
        dtype 'int8' only: (q int8 [out_features, in_features], scale float32 [out_features, groups]) with groups = ceil(in_features / group_size); W[n, k] ~= q[n, k] * scale[n, k // group_size] (copies).
        """
    @property
    def weight(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        The weight unpacked to [out_features, in_features] (a copy): for 'int8' the dequantized q * scale, for 'bf16' the rounded values.
        """
class KVCache:
    """
    Preallocated key/value cache for incremental decoding, stored [num_layers, batch, num_kv_heads, max_len, head_dim]
    so each head's keys are contiguous. append() copies only the new rows; attend() reads the cache in place.
    num_kv_heads (default num_heads, must divide it): grouped-query attention. append() takes k, v with num_kv_heads
    heads, attend() takes q with num_heads heads; query head h reads KV head h // (num_heads // num_kv_heads).
    """
    def __init__(self, num_layers: typing.SupportsInt | typing.SupportsIndex, batch: typing.SupportsInt | typing.SupportsIndex, num_heads: typing.SupportsInt | typing.SupportsIndex, head_dim: typing.SupportsInt | typing.SupportsIndex, max_len: typing.SupportsInt | typing.SupportsIndex, *, num_kv_heads: typing.Any = None) -> None:
        ...
    def __repr__(self) -> str:
        ...
    def append(self, layer: typing.SupportsInt | typing.SupportsIndex, k: typing.Any, v: typing.Any, *, rows: typing.Any = None) -> None:
        """
        k, v: float32 [batch, T, num_kv_heads*head_dim] (row-strided views allowed), written at the layer's current lengths, which then advance by T. rows: the cache rows k and v's sequences go to (distinct; then k is [len(rows), T, ...]), so rows advance independently; None = every row. ValueError if a row would exceed max_len.
        """
    def attend(self, layer: typing.SupportsInt | typing.SupportsIndex, q: typing.Any, attention_mask: typing.Any = None, causal: bool = True, scale: typing.Any = None, out: typing.Any = None, *, rows: typing.Any = None) -> numpy.ndarray:
        """
        q: float32 [batch, Tq, num_heads*head_dim] -> [batch, Tq, num_heads*head_dim] over the layer's cached keys. attention_mask: [batch, cached_len] of 0/1 (left padding). causal aligns each row's last query with its last cached key. rows: q's sequences attend to these cache rows (q is [len(rows), Tq, ...], the mask [len(rows), longest of them]); None = every row.
        """
    def keys(self, layer: typing.SupportsInt | typing.SupportsIndex) -> numpy.ndarray:
        """
        A copy of the layer's cached keys, [batch, cached_len, num_kv_heads*head_dim].
        """
    def lengths(self, layer: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.int64]:
        """
        Cached tokens per sequence of `layer` (int64 [batch]).
        """
    def reorder(self, source: typing.Any) -> None:
        """
        Row b becomes a copy of old row source[b] in every layer (keys, values, length); source: int [batch] in [0, batch), repeats allowed (beam search keeps the winning beams' caches).
        """
    def reset(self, rows: typing.Any = None) -> None:
        """
        Forget the cached tokens of `rows` in every layer (None: every row); storage is kept, rows are reused.
        """
    def trim(self, length: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Keep at most `length` tokens per sequence in every layer.
        """
    def values(self, layer: typing.SupportsInt | typing.SupportsIndex) -> numpy.ndarray:
        """
        A copy of the layer's cached values, [batch, cached_len, num_kv_heads*head_dim].
        """
    @property
    def batch(self) -> int:
        ...
    @property
    def head_dim(self) -> int:
        ...
    @property
    def max_len(self) -> int:
        ...
    @property
    def num_heads(self) -> int:
        ...
    @property
    def num_kv_heads(self) -> int:
        ...
    @property
    def num_layers(self) -> int:
        ...
class PackedRecurrent:
    """
    A multi-layer, optionally bidirectional LSTM / GRU / Elman RNN with torch's weights packed once.
    
    mode: torch's RNNBase mode, "LSTM", "GRU", "RNN_TANH" or "RNN_RELU". weights: num_layers * directions tuples
    (w_ih, w_hh, b_ih, b_hh, w_hr), layer-major (layer 0 forward, layer 0 reverse, layer 1 forward, ...), float32 in
    torch's layout with G = 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n) or 1 (RNN) gate blocks: w_ih [G*H, in], w_hh
    [G*H, Hout], biases [G*H] or None, w_hr [proj_size, H] (LSTM with proj_size > 0) or None. Packed for the ISA
    active at construction. dtype: "float32" | "bf16" | "int8", how the weight matrices are stored (weight-only, as
    PackedLinear; states, gates and sums stay float32). cpuformer.nn.LSTM / GRU / RNN and the cell classes wrap this.
    """
    @staticmethod
    def check_sizes(mode: str, input_size: typing.SupportsInt | typing.SupportsIndex, hidden_size: typing.SupportsInt | typing.SupportsIndex, num_layers: typing.SupportsInt | typing.SupportsIndex, proj_size: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        """
        ValueError unless mode is known, input_size, hidden_size, num_layers >= 1 and 0 <= proj_size < hidden_size (0 unless LSTM): the constructor's first check, for callers that build weights from the sizes.
        """
    def __init__(self, mode: str, input_size: typing.SupportsInt | typing.SupportsIndex, hidden_size: typing.SupportsInt | typing.SupportsIndex, num_layers: typing.SupportsInt | typing.SupportsIndex, bidirectional: bool, weights: collections.abc.Sequence, proj_size: typing.SupportsInt | typing.SupportsIndex = 0, dtype: str = 'float32') -> None:
        ...
    def forward(self, x: typing.Any, h0: typing.Any = None, c0: typing.Any = None, lengths: typing.Any = None, batch_first: bool = False) -> tuple:
        """
        x: float32 [T, B, input_size] ([B, T, input_size] if batch_first); h0 [L*dirs, B, Hout] or None (zeros); c0 [L*dirs, B, H] or None (LSTM only); lengths: int [B] in [1, T] or None. Returns (output, h_n, c_n), c_n None unless LSTM; output rows past a sequence's length are zero. Releases the GIL for the whole sequence.
        """
    @property
    def bidirectional(self) -> bool:
        ...
    @property
    def dtype(self) -> str:
        ...
    @property
    def hidden_size(self) -> int:
        ...
    @property
    def input_size(self) -> int:
        ...
    @property
    def isa(self) -> str:
        ...
    @property
    def mode(self) -> str:
        ...
    @property
    def num_layers(self) -> int:
        ...
    @property
    def proj_size(self) -> int:
        ...
class PackedLSTM:
    """
    A multi-layer (optionally bidirectional, optionally projected) LSTM with torch.nn.LSTM's weights packed once:
    PackedRecurrent with mode "LSTM" (same weights tuples; forward always returns c_n).
    """
    @staticmethod
    def check_sizes(input_size: typing.SupportsInt | typing.SupportsIndex, hidden_size: typing.SupportsInt | typing.SupportsIndex, num_layers: typing.SupportsInt | typing.SupportsIndex, proj_size: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        ValueError unless input_size, hidden_size, num_layers >= 1 and 0 <= proj_size < hidden_size (the constructor's first check, for callers that build weights from the sizes).
        """
    def __init__(self, input_size: typing.SupportsInt | typing.SupportsIndex, hidden_size: typing.SupportsInt | typing.SupportsIndex, num_layers: typing.SupportsInt | typing.SupportsIndex, bidirectional: bool, proj_size: typing.SupportsInt | typing.SupportsIndex, weights: collections.abc.Sequence, dtype: str = 'float32') -> None:
        ...
    def forward(self, x: typing.Any, h0: typing.Any = None, c0: typing.Any = None, lengths: typing.Any = None, batch_first: bool = False) -> tuple:
        """
        x: float32 [T, B, input_size] ([B, T, input_size] if batch_first); h0 [L*dirs, B, Hout], c0 [L*dirs, B, H] or None (zeros); lengths: int [B] in [1, T] or None. Returns (output, h_n, c_n); output rows past a sequence's length are zero. Releases the GIL for the whole sequence.
        """
    @property
    def bidirectional(self) -> bool:
        ...
    @property
    def dtype(self) -> str:
        ...
    @property
    def hidden_size(self) -> int:
        ...
    @property
    def input_size(self) -> int:
        ...
    @property
    def isa(self) -> str:
        ...
    @property
    def mode(self) -> str:
        ...
    @property
    def num_layers(self) -> int:
        ...
    @property
    def proj_size(self) -> int:
        ...
def _array_pool_clear() -> None:
    """
    Free every block the array pool holds.
    """
def _array_pool_handler() -> typing.Any:
    """
    numpy's mem_handler capsule of the pooled allocator (cpuformer.array_pool installs it).
    """
def _array_pool_stats() -> dict:
    """
    Blocks the array pool holds, its limit, and reuse counts (tests, diagnostics).
    """
def _config() -> dict:
    ...
def _forked_serial() -> bool:
    """
    Whether this process is a fork of one whose OpenMP threads had started (then every op runs serial).
    """
def _isa() -> str:
    ...
def _last_team_size() -> int:
    """
    Threads the last parallel call from this thread ran on (tests).
    """
def _max_num_threads() -> int:
    """
    The most threads set_num_threads accepts.
    """
def _process_num_threads() -> int:
    """
    The process-wide setting, whatever this thread's override.
    """
def _recently_serial() -> bool:
    """
    Whether parallel ops run serial right now because a recent one saw its threads preempted (tests).
    """
def _set_array_handler(handler: typing.Any) -> typing.Any:
    """
    PyDataMem_SetHandler: make `handler` the allocator of new arrays in this context; returns the previous.
    """
def _set_array_pool_limit(bytes: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Most bytes of freed blocks the pool keeps (0: keep none); clears it (tests).
    """
def _set_bf16_compute(mode: str) -> None:
    """
    Test hook (and CPUFORMER_BF16_COMPUTE): when bf16 weights run bf16 compute (only on kernels that have it: avx512_bf16).
    """
def _set_int8_compute(mode: str) -> None:
    """
    Test hook (and CPUFORMER_INT8_COMPUTE): when int8 weights run int8 compute.
    """
def _set_isa(name: str) -> None:
    """
    Test hook: switch the kernels used from now on (never above the CPU or CPUFORMER_ISA). Objects already packed keep the ISA they were packed for.
    """
def _set_serial_memory(enabled: bool) -> None:
    """
    Test hook: off, no call starts serial after a stall (team sizes become predictable on a busy machine).
    """
def _set_thread_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    This thread's override (cpuformer.num_threads(n) uses it); 0 removes it.
    """
def _thread_num_threads() -> int:
    """
    This thread's override, 0 if none.
    """
def _threads_in_use() -> int:
    """
    Threads leased by running calls right now (tests).
    """
def activation(x: typing.Any, name: str) -> numpy.ndarray:
    """
    Elementwise 'none' | 'gelu' | 'gelu_tanh' | 'relu'.
    """
def embedding(ids: typing.Any, table: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
    """
    table[ids]: ids of any shape and integer dtype -> ids.shape + (dim,).
    """
def embedding_bag(ids: typing.Any, offsets: typing.Any, table: typing.Any, mode: str = 'mean') -> numpy.typing.NDArray[numpy.float32]:
    """
    Pooled lookups as torch.nn.functional.embedding_bag: bag b is ids[offsets[b]:offsets[b+1]] (the last runs to the end); 'sum' or 'mean'; an empty bag gives zeros.
    """
def gelu(x: typing.Any, approximate: str = 'none') -> numpy.ndarray:
    """
    GELU, exact (erf) or with the tanh approximation, as torch.nn.functional.gelu.
    """
def get_num_threads() -> int:
    """
    Threads each op called from this thread may use: the num_threads() block around it if any, else the process setting (default: OpenMP's, i.e. OMP_NUM_THREADS). 1 in a child forked after threads ran.
    """
def layer_norm(x: typing.Any, weight: typing.Any, bias: typing.Any, eps: typing.SupportsFloat | typing.SupportsIndex = 1e-05, *, out: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    """
    Layer norm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias (biased variance). out: optional preallocated result (may be x for in place).
    """
def linear(x: typing.Any, weight: typing.Any, bias: typing.Any = None, activation: str = 'none', residual: typing.Any = None, dtype: str = 'float32') -> numpy.ndarray:
    """
    One-shot y = act(x @ weight.T + bias) + residual, the weight stored as dtype ('float32', 'bf16', 'int8': see PackedLinear). Packs the weight on every call: use PackedLinear for repeated calls.
    """
def lstm_cell(x: typing.Any, h: typing.Any, c: typing.Any, w_ih: typing.Any, w_hh: typing.Any, b_ih: typing.Any = None, b_hh: typing.Any = None) -> tuple:
    """
    torch.nn.LSTMCell step: x [B, I], h, c [B, H], w_ih [4H, I], w_hh [4H, H], b_ih, b_hh [4H] or None -> (h', c'). Gates i, f, g, o in torch's order. Packs the weights on every call (nn.LSTMCell keeps them packed).
    """
def multi_head_attention(q: typing.Any, k: typing.Any, v: typing.Any, num_heads: typing.SupportsInt | typing.SupportsIndex, attention_mask: typing.Any = None, causal: bool = False, scale: typing.Any = None, *, out: typing.Any = None, num_kv_heads: typing.Any = None) -> numpy.ndarray:
    """
    Fused multi-head attention softmax(scale q k^T + mask) v with an online softmax (no [B, H, Tq, Tk] scores).
    
    q: float32 [B, Tq, H*D]; k, v: [B, Tk, H*D] (head h = columns h*D:(h+1)*D, as in Hugging Face). Row-strided
    views such as qkv[..., :H*D] of a fused projection are read in place (the last axis must be contiguous).
    attention_mask: [B, Tk] of 0/1 (bool, int or float; 1 = attend, 0 = padding).
    causal: query i sees key j only when j <= i + Tk - Tq (the last query is aligned with the last key).
    scale: defaults to 1/sqrt(D). A query that sees no key gets zeros. out: optional C-contiguous [B, Tq, H*D].
    num_kv_heads: grouped-query attention (None = num_heads): k and v are [B, Tk, KVH*D] and query head h reads KV
    head h // (H // KVH); KVH must divide H. K/V are read once per KV head, never repeated.
    """
def multi_head_attention_varlen(q: typing.Any, k: typing.Any, v: typing.Any, cu_seqlens: typing.Any, num_heads: typing.SupportsInt | typing.SupportsIndex, causal: bool = False, scale: typing.Any = None, *, out: typing.Any = None, relative_bias: typing.Any = None, num_kv_heads: typing.Any = None) -> numpy.ndarray:
    """
    Attention over packed sequences of mixed lengths (no padding work).
    
    q, k, v: float32 [total_tokens, H*D] (row-strided views allowed); cu_seqlens: int [B + 1], starting at 0,
    non-decreasing, ending at total_tokens: sequence b is rows cu_seqlens[b]:cu_seqlens[b+1] and attends only to
    itself. relative_bias: optional float32 [H, 2L - 1] (L >= the longest sequence): the score of query i and key j
    (positions in their sequence) gains relative_bias[h, j - i + L - 1] after scaling (MPNet's relative position
    bias; never expanded to [B, H, T, T]). num_kv_heads: grouped-query attention as in multi_head_attention (k, v:
    [total_tokens, KVH*D]). Returns [total_tokens, H*D].
    """
def rms_norm(x: typing.Any, weight: typing.Any, eps: typing.SupportsFloat | typing.SupportsIndex = 1e-06, *, out: typing.Any = None) -> numpy.ndarray:
    """
    RMSNorm over the last axis as Llama's (fp32): x * rsqrt(mean(x^2) + eps) * weight. out: optional preallocated result (may be x for in place).
    """
def rotary_embedding(x: typing.Any, positions: typing.Any, cos: typing.Any, sin: typing.Any, head_dim: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Rotary position embeddings, in place (Hugging Face Llama's rotate-half convention).
    
    x: float32 [tokens, H*D] or [B, T, H*D], every head of every token rotated by its position; a column slice of a
    fused QKV projection (qkv[..., :(H + KVH)*D] rotates Q and K together) is rotated where it lies.
    positions: int [tokens] or [B, T]; cos, sin: float32 [P, D/2] tables (row p = cos / sin of position p's angles,
    computed once per model). Head element i pairs with i + D/2: x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin.
    """
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Set the threads every following op may use, process-wide (1 <= n <= 4 per CPU, at least 64).
    """
def silu_mul(gate_up: typing.Any, *, out: typing.Any = None) -> numpy.ndarray:
    """
    SwiGLU: gate_up [..., 2F] (gate = first F columns, up = last F, one packed GEMM's output) -> silu(gate) * up, [..., F].
    """
def softmax(x: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
    """
    Softmax over the last axis. A row that is entirely -inf gives zeros rather than NaN.
    """
def top_k_dot(queries: typing.Any, matrix: typing.Any, k: typing.SupportsInt | typing.SupportsIndex, exclude: typing.Any = None) -> tuple:
    """
    top_k_dot(queries [q, d], matrix [n, d], k): PackedLinear(matrix).top_k(queries, k) for one call; keep a PackedLinear to pack the matrix only once.
    """
__version__: str = '0.1.0.dev0'
