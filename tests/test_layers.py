"""cpuformer/layers.py: PackedBatch against per-sequence numpy indexing, Workspace reuse, take_linear /
take_fused_linear against separate float64 linears, SelfAttention against the float64 references, and the
errors of fused_activation and SelfAttention."""
from __future__ import annotations

import math

import numpy as np
import pytest

import reference as ref
from cpuformer import ops
from cpuformer.io import CheckpointError, WeightStore
from cpuformer.layers import (KVCacheBatch, PackedBatch, SelfAttention, Workspace, fused_activation, take_fused_linear,
                             take_linear)
from helpers import rand

# ---- PackedBatch ---------------------------------------------------------------------------------------------

MASKS = {
    "right_padded": [[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]],
    "left_padded": [[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]],
    "holes_and_empty": [[1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [0, 1, 1, 0, 0]],
    "full": [[1, 1, 1], [1, 1, 1]],
    "all_empty": [[0, 0], [0, 0]],
    "no_sequences": np.zeros((0, 3)),
}


def _per_sequence(padded: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """The real tokens of each sequence, in order: the independent reference for the packed layout."""
    return [padded[b][mask[b].astype(bool)] for b in range(len(mask))]


@pytest.mark.parametrize("name", MASKS)
@pytest.mark.parametrize("dtype", [np.int64, bool, np.float32])
def test_from_mask_gather_scatter_match_per_sequence_indexing(name, dtype):
    mask = np.asarray(MASKS[name], dtype)
    batch, t = mask.shape
    padded = rand(np.random.default_rng(0), batch, t, 3)
    packed = PackedBatch.from_mask(mask)
    lengths = mask.astype(bool).sum(axis=1)
    assert packed.shape == (batch, t)
    assert packed.cu_seqlens.dtype == np.int64
    np.testing.assert_array_equal(packed.cu_seqlens, np.concatenate([[0], np.cumsum(lengths)]))
    np.testing.assert_array_equal(packed.lengths, lengths)
    assert packed.total_tokens == lengths.sum()
    pieces = _per_sequence(padded, mask)
    gathered = packed.gather(padded)
    assert gathered.shape == (lengths.sum(), 3)
    for b, piece in enumerate(pieces):  # sequence b is exactly rows cu[b]:cu[b + 1], in order
        np.testing.assert_array_equal(gathered[packed.cu_seqlens[b]:packed.cu_seqlens[b + 1]], piece)
    scattered = packed.scatter(gathered)
    assert scattered.shape == padded.shape and scattered.dtype == padded.dtype
    np.testing.assert_array_equal(scattered, np.where(mask.astype(bool)[..., None], padded, 0))


@pytest.mark.parametrize("name", ["right_padded", "left_padded", "full"])
def test_first_tokens_are_each_sequences_first_real_token(name):
    mask = np.asarray(MASKS[name])
    padded = rand(np.random.default_rng(1), *mask.shape, 5)
    packed = PackedBatch.from_mask(mask)
    expected = np.stack([piece[0] for piece in _per_sequence(padded, mask)])
    np.testing.assert_array_equal(packed.first_tokens(packed.gather(padded)), expected)


@pytest.mark.parametrize("lengths", [[3, 1, 4, 1, 5], [2], [0, 3, 0], [0], []])
def test_from_lengths_equals_from_right_padded_mask(lengths):
    t = max(lengths, default=0)
    mask = (np.arange(t)[None, :] < np.asarray(lengths, np.int64)[:, None]).reshape(len(lengths), t)
    a, b = PackedBatch.from_lengths(lengths), PackedBatch.from_mask(mask)
    assert a.shape == b.shape == (len(lengths), t)
    for field in ("rows", "cols", "cu_seqlens"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    padded = np.arange(len(lengths) * t * 2, dtype=np.float32).reshape(len(lengths), t, 2)
    np.testing.assert_array_equal(a.scatter(a.gather(padded)), b.scatter(b.gather(padded)))


def test_packed_attention_equals_padded_attention():
    """The layout is what varlen attention expects: packing, attending and scattering back equals padded
    attention with the mask, on every real token."""
    rng = np.random.default_rng(2)
    mask = np.asarray(MASKS["right_padded"])
    q, k, v = (rand(rng, 3, 4, 16) for _ in range(3))
    packed = PackedBatch.from_mask(mask)
    out = ops.multi_head_attention_varlen(packed.gather(q), packed.gather(k), packed.gather(v), packed.cu_seqlens, 2)
    expected = ref.attention(q, k, v, 2, mask)
    ref.assert_close(packed.scatter(out)[mask.astype(bool)], expected[mask.astype(bool)], "attention")


# ---- Workspace -----------------------------------------------------------------------------------------------

def test_workspace_reuses_a_buffer_per_name_and_shape():
    ws = Workspace()
    a = ws.get("qkv", (4, 6))
    assert a.shape == (4, 6) and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    assert ws.get("qkv", (4, 6)) is a
    b = ws.get("context", (4, 6))
    assert b is not a and not np.shares_memory(a, b)
    c = ws.get("qkv", (5, 6))  # another shape: a new buffer, which the name now holds
    assert c.shape == (5, 6) and c is not a
    assert ws.get("qkv", (5, 6)) is c
    assert Workspace().get("qkv", (4, 6)) is not a  # never shared between workspaces


# ---- linears from a WeightStore -------------------------------------------------------------------------------

def _qkv_store(rng, hidden=24, out=24, extra=None):
    tensors = {f"attn.{p}.{kind}": rand(rng, out, hidden) if kind == "weight" else rand(rng, out)
               for p in ("query", "key", "value") for kind in ("weight", "bias")}
    tensors.update(extra or {})
    return tensors


@pytest.mark.parametrize("activation", ["none", "gelu", "relu"])
def test_take_fused_linear_equals_separate_linears_side_by_side(isa, activation):
    rng = np.random.default_rng(3)
    tensors = _qkv_store(rng, hidden=24, out=40)
    store = WeightStore(tensors)
    prefixes = ["attn.query", "attn.key", "attn.value"]
    fused = take_fused_linear(store, prefixes, 24, 40, activation=activation)
    store.assert_all_used()
    assert (fused.in_features, fused.out_features, fused.has_bias) == (24, 120, True)
    x = rand(rng, 7, 24)
    expected = np.concatenate([ref.linear(x, tensors[f"{p}.weight"], tensors[f"{p}.bias"], activation)
                               for p in prefixes], axis=-1)
    ref.assert_close(fused(x), expected, "linear", scale=math.sqrt(24))


def test_take_fused_linear_names_a_misshapen_weight():
    rng = np.random.default_rng(4)
    store = WeightStore(_qkv_store(rng, extra={"attn.key.weight": rand(rng, 23, 24)}))
    with pytest.raises(CheckpointError, match=r"weight 'attn.key.weight': expected shape \(24, 24\)"):
        take_fused_linear(store, ["attn.query", "attn.key", "attn.value"], 24, 24)
    with pytest.raises(CheckpointError, match=r"weight 'attn.missing.weight' not found"):
        take_fused_linear(store, ["attn.query", "attn.missing"], 24, 24)


@pytest.mark.parametrize("layout", ["out_in", "in_out"])
def test_take_linear_layouts(isa, layout):
    rng = np.random.default_rng(5)
    weight, bias = rand(rng, 9, 13), rand(rng, 9)  # [out, in]
    stored = weight if layout == "out_in" else np.ascontiguousarray(weight.T)
    store = WeightStore({"fc.weight": stored, "fc.bias": bias, "no_bias.weight": stored})
    x = rand(rng, 4, 13)
    ref.assert_close(take_linear(store, "fc", 13, 9, layout=layout)(x), ref.linear(x, weight, bias), "linear")
    plain = take_linear(store, "no_bias", 13, 9, bias=False, layout=layout)
    assert not plain.has_bias
    ref.assert_close(plain(x), ref.linear(x, weight), "linear")
    store.assert_all_used()


# ---- fused_activation ------------------------------------------------------------------------------------------

# Hugging Face's definitions (transformers.activations), written out independently of ref.gelu.
HF_ACTIVATIONS = {
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
    "gelu_new": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "gelu_fast": lambda x: 0.5 * x * (1 + np.tanh(x * 0.7978845608 * (1 + 0.044715 * x * x))),
    "gelu_pytorch_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "relu": lambda x: np.maximum(x, 0),
}


@pytest.mark.parametrize("hidden_act", HF_ACTIVATIONS)
def test_fused_activation_computes_the_hugging_face_function(hidden_act):
    x = np.linspace(-6, 6, 301, dtype=np.float32)
    ref.assert_close(ops.activation(x, fused_activation(hidden_act)), HF_ACTIVATIONS[hidden_act](x.astype(np.float64)),
                     "gelu")


@pytest.mark.parametrize("hidden_act", ["swish", "silu", "GELU", "", None, 3])
def test_fused_activation_rejects_what_it_does_not_fuse(hidden_act):
    supported = ", ".join(sorted(HF_ACTIVATIONS))
    with pytest.raises(ValueError, match=rf"hidden_act {hidden_act!r} is not supported; supported: {supported}$"):
        fused_activation(hidden_act)


# ---- SelfAttention ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_equals_reference_per_sequence(isa, causal):
    rng = np.random.default_rng(6)
    hidden, heads, lengths = 32, 4, [5, 1, 9]
    w_qkv, b_qkv = rand(rng, 3 * hidden, hidden), rand(rng, 3 * hidden)
    w_out, b_out = rand(rng, 20, hidden), rand(rng, 20)
    attn = SelfAttention(ops.PackedLinear(w_qkv, b_qkv), ops.PackedLinear(w_out, b_out), heads, causal=causal)
    batch = PackedBatch.from_lengths(lengths)
    x, residual = rand(rng, batch.total_tokens, hidden), rand(rng, batch.total_tokens, 20)
    ws = Workspace()
    got = attn(x, batch, residual=residual, workspace=ws).copy()
    for b in range(len(lengths)):
        rows = slice(batch.cu_seqlens[b], batch.cu_seqlens[b + 1])
        qkv = ref.linear(x[rows], w_qkv, b_qkv)[None]
        q, k, v = qkv[..., :hidden], qkv[..., hidden:2 * hidden], qkv[..., 2 * hidden:]
        context = ref.attention(q, k, v, heads, causal=causal)[0]
        ref.assert_close(got[rows], ref.linear(context, w_out, b_out, residual=residual[rows]), "attention",
                         scale=math.sqrt(hidden), err_msg=f"sequence {b}")
    # A second call reuses the workspace's buffers (its result is one of them) and gives the same result.
    np.testing.assert_array_equal(attn(x, batch, residual=residual, workspace=ws), got)


def test_self_attention_on_a_kv_cache_equals_the_packed_causal_pass(isa):
    """The same layer on both token layouts: a left-padded batch through a KV cache (prompt, then one token at a
    time) gives each real token what the packed causal pass gives it."""
    rng = np.random.default_rng(7)
    hidden, heads, lengths, width = 32, 4, [6, 3], 6
    w = lambda *shape: rand(rng, *shape, scale=0.2)  # noqa: E731 - trained-model scale: softmax not saturated
    attn = SelfAttention(ops.PackedLinear(w(3 * hidden, hidden), w(3 * hidden)),
                         ops.PackedLinear(w(hidden, hidden), w(hidden)), heads, causal=True, layer=1)
    packed = PackedBatch.from_lengths(lengths)
    x = rand(rng, packed.total_tokens, hidden)
    want = attn(x, packed).copy()
    padded = np.zeros((2, width, hidden), np.float32)
    key_mask = np.zeros((2, width), np.uint8)
    for b, n in enumerate(lengths):  # left padding
        padded[b, width - n:] = x[packed.cu_seqlens[b]:packed.cu_seqlens[b + 1]]
        key_mask[b, width - n:] = 1
    prompt = 4
    cached = KVCacheBatch(ops.KVCache(2, 2, heads, hidden // heads, width), key_mask)
    cached.advance(prompt)
    parts = [attn(padded[:, :prompt], cached).copy()]
    for t in range(prompt, width):
        cached.advance(1)
        parts.append(attn(np.ascontiguousarray(padded[:, t:t + 1]), cached).copy())
    got = np.concatenate(parts, axis=1)
    for b, n in enumerate(lengths):
        ref.assert_close(got[b, width - n:], want[packed.cu_seqlens[b]:packed.cu_seqlens[b + 1]], "attention_paths",
                         err_msg=f"row {b}")
    with pytest.raises(ValueError, match="6 cached \\+ 1 new tokens exceed the cache's max_len 6"):
        cached.advance(1)


@pytest.mark.parametrize("out_features, heads", [(96, 5), (95, 1)])
def test_self_attention_checks_the_fused_qkv_width(out_features, heads):
    qkv = ops.PackedLinear(np.zeros((out_features, 8), np.float32))
    with pytest.raises(ValueError, match=rf"fused QKV has {out_features} outputs; expected 3 \* hidden with hidden "
                                         rf"divisible by num_heads={heads}"):
        SelfAttention(qkv, ops.PackedLinear(np.zeros((8, 8), np.float32)), heads)
