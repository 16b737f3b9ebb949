"""Llama-family decoders from Hugging Face checkpoints: LlamaModel (hidden states) and LlamaForCausalLM (logits,
generate), for the folders whose model_type is llama, mistral or qwen2 (layouts that differ only by config).

Attribute and weight names mirror the checkpoint (model.embed_tokens, model.layers.N.self_attn.q_proj,
model.layers.N.mlp.gate_proj, model.norm, lm_head). What the family adds to GPT-2's blocks, all on the shared layers:
- RMSNorm (ops.rms_norm) instead of LayerNorm;
- q_proj, k_proj and v_proj packed into ONE GEMM whose output holds Q | K | V; rotary position embeddings rotate Q
  and K in place there (cpuformer.rotary: cos / sin tables computed once per model), then attention reads the three
  as strided views. Grouped-query attention: K and V have num_key_value_heads heads, stored once per KV head in the
  cache, never repeated;
- SwiGLU MLP: gate_proj and up_proj packed into ONE GEMM ([gate; up] rows concatenated at load), silu(gate) * up
  by ops.silu_mul, down_proj with the residual add fused into its store.
Generation is GPT-2's (GenerationMixin): the model provides `new_kv_cache` and `next_token_logits`.

Config differences: qwen2 has biases on q/k/v (not o); llama's `attention_bias` puts biases on q/k/v/o and
`mlp_bias` on the MLP; `head_dim` comes from config.json when present. Sliding-window attention is not
implemented: a model with an active sliding window (mistral's `sliding_window`, qwen2's with use_sliding_window)
accepts sequences up to the window only, where windowed and full attention agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import ops
from ..chat import ChatMixin
from ..array_pool import pooled
from ..generation import DecodeStatePool, GenerationConfig, GenerationMixin
from ..inputs import check_attention_mask, check_id_range, check_input_ids
from ..io import WeightStore
from ..layers import (Embedding, KVCacheBatch, PackedBatch, RMSNorm, SelfAttention, TiedEmbedding, Workspace,
                      pack_linear, take_fused_linear, take_linear)
from ..rotary import RopeParameters, RotaryEmbedding
from .base import Checkpoint, PretrainedModel, config_sizes
from .registry import register_model

__all__ = ["LlamaConfig", "LlamaForCausalLM", "LlamaModel"]


def _eos_ids(value: Any, vocab_size: int) -> tuple[int, ...]:
    """config.json's eos_token_id (an int or a list of them, as Llama 3's [128001, 128008, 128009]): the ids inside
    the vocabulary, in order, each once."""
    ids = value if isinstance(value, list) else [value]
    out: list[int] = []
    for i in ids:
        if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab_size and i not in out:
            out.append(i)
    return tuple(out)


@dataclass(frozen=True)
class LlamaConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope: RopeParameters
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    tie_word_embeddings: bool
    sliding_window: int | None
    eos_token_ids: tuple[int, ...]  # generation ends at any of them (the first is the eos, the rest stop ids)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "LlamaConfig":
        sizes = config_sizes(config, "Llama-family", ["vocab_size", "hidden_size", "intermediate_size",
                                                      "num_hidden_layers", "num_attention_heads"],
                             may_be_zero=["num_hidden_layers"])
        heads = sizes["num_attention_heads"]
        kv_heads = config.get("num_key_value_heads") or heads
        if not isinstance(kv_heads, int) or isinstance(kv_heads, bool) or kv_heads < 1 or heads % kv_heads:
            raise ValueError(f"config num_key_value_heads must be a positive int dividing num_attention_heads={heads}, "
                             f"got {kv_heads!r}")
        head_dim = config.get("head_dim") or sizes["hidden_size"] // heads
        if not isinstance(head_dim, int) or isinstance(head_dim, bool) or head_dim < 2 or head_dim % 2:
            raise ValueError(f"config head_dim must be an even int >= 2, got {head_dim!r}")
        if config.get("head_dim") is None and sizes["hidden_size"] % heads:
            raise ValueError(f"hidden_size {sizes['hidden_size']} is not divisible by num_attention_heads {heads}")
        act = config.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"hidden_act {act!r} is not supported for Llama-family models; supported: silu")
        model_type = config.get("model_type") or "llama"
        if model_type == "qwen2":
            qkv_bias, o_bias, mlp_bias = True, False, False
            window = config.get("sliding_window") if config.get("use_sliding_window") else None
        else:
            qkv_bias = o_bias = bool(config.get("attention_bias", False))
            mlp_bias = bool(config.get("mlp_bias", False))
            window = config.get("sliding_window") if model_type == "mistral" else None
        max_pos = config.get("max_position_embeddings", 2048)
        if not isinstance(max_pos, int) or isinstance(max_pos, bool) or max_pos < 1:
            raise ValueError(f"config max_position_embeddings must be a positive int, got {max_pos!r}")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(f"config sliding_window must be a positive int or null, got {window!r}")
        return cls(model_type=model_type, **sizes, num_key_value_heads=kv_heads, head_dim=head_dim,
                   max_position_embeddings=max_pos, rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
                   rope=RopeParameters.from_config(config), qkv_bias=qkv_bias, o_bias=o_bias, mlp_bias=mlp_bias,
                   tie_word_embeddings=bool(config.get("tie_word_embeddings", False)), sliding_window=window,
                   eos_token_ids=_eos_ids(config.get("eos_token_id"), sizes["vocab_size"]))

    @property
    def eos_token_id(self) -> int | None:
        return self.eos_token_ids[0] if self.eos_token_ids else None

    @property
    def max_positions(self) -> int:
        """The longest sequence we run: max_position_embeddings, or the sliding window when shorter (see module)."""
        if self.sliding_window is not None:
            return min(self.max_position_embeddings, self.sliding_window)
        return self.max_position_embeddings


class LlamaPretrainedModel(PretrainedModel):
    """What every Llama-family class shares in loading: its config, weight names and tokenizer set-up."""

    config_class = LlamaConfig
    model_types = ("llama", "mistral", "qwen2")
    base_prefix = "model."
    buffers = ("*.rotary_emb.inv_freq",)  # older checkpoints saved the frequencies: they are recomputed

    @classmethod
    def tokenizer_options(cls, config: LlamaConfig) -> dict[str, Any]:
        return {"max_length": config.max_positions, "clean_up_spaces": False}


class LlamaDecoderLayer:
    """Pre-norm block: h = x + o_proj(attn(rope(qkv(input_layernorm(x))))), then h + down_proj(silu(gate) * up) of
    post_attention_layernorm(h). Both residual adds are fused into the o_proj / down_proj GEMMs."""

    def __init__(self, store: WeightStore, config: LlamaConfig, prefix: str, layer: int, rotary: RotaryEmbedding):
        h, d = config.hidden_size, config.head_dim
        heads, kv = config.num_attention_heads, config.num_key_value_heads
        a = f"{prefix}.self_attn"
        self.input_layernorm = RMSNorm.from_store(store, f"{prefix}.input_layernorm", h, config.rms_norm_eps)
        qkv = take_fused_linear(store, [f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj"], h,
                                [heads * d, kv * d, kv * d], bias=config.qkv_bias)
        o_proj = take_linear(store, f"{a}.o_proj", heads * d, h, bias=config.o_bias)
        self.self_attn = SelfAttention(qkv, o_proj, heads, scale=float(1.0 / np.sqrt(d)), causal=True, layer=layer,
                                       num_kv_heads=kv, rotary=rotary)
        self.post_attention_layernorm = RMSNorm.from_store(store, f"{prefix}.post_attention_layernorm", h,
                                                           config.rms_norm_eps)
        m, inner = f"{prefix}.mlp", config.intermediate_size
        self.gate_up_proj = take_fused_linear(store, [f"{m}.gate_proj", f"{m}.up_proj"], h, inner,
                                              bias=config.mlp_bias)
        self.down_proj = take_linear(store, f"{m}.down_proj", inner, h, bias=config.mlp_bias)

    def __call__(self, x: np.ndarray, positions: np.ndarray, batch: PackedBatch | KVCacheBatch,
                 ws: Workspace) -> np.ndarray:
        """x: [total_tokens, hidden] (packed) or [B, T, hidden] (cached) -> the same shape, in a workspace buffer
        (never x itself)."""
        h = self.self_attn(self.input_layernorm(x, out=ws.get("norm", x.shape)), batch, residual=x, workspace=ws,
                           positions=positions)
        rows, inner = h.shape[:-1], self.down_proj.in_features
        gate_up = self.gate_up_proj(self.post_attention_layernorm(h, out=ws.get("norm", h.shape)),
                                    out=ws.get("gate_up", rows + (2 * inner,)))
        act = ops.silu_mul(gate_up, out=ws.get("ffn", rows + (inner,)))
        return self.down_proj(act, residual=h, out=ws.get("mlp_out", h.shape))


@register_model("LlamaModel", "MistralModel", "Qwen2Model")
class LlamaModel(LlamaPretrainedModel):
    """The Llama-family transformer. `model(input_ids, attention_mask=None)` -> last hidden state [B, T, hidden]
    (after the final norm; zeros at padding). A ...ForCausalLM checkpoint loads too (lm_head skipped)."""

    is_base_model = True

    def __init__(self, config: LlamaConfig, store: WeightStore):
        self.config = config
        self.rotary = RotaryEmbedding(config.rope, config.head_dim, config.max_positions)
        self.embed_tokens = Embedding.from_store(store, "embed_tokens.weight", config.vocab_size, config.hidden_size)
        self.layers = [LlamaDecoderLayer(store, config, f"layers.{i}", i, self.rotary)
                       for i in range(config.num_hidden_layers)]
        self.norm = RMSNorm.from_store(store, "norm", config.hidden_size, config.rms_norm_eps)

    @pooled
    def forward(self, ids: np.ndarray, positions: np.ndarray, batch: PackedBatch | KVCacheBatch,
                ws: Workspace) -> np.ndarray:
        """ids, positions: [total_tokens] (PackedBatch) or [B, T] (KVCacheBatch) -> final hidden states (after the
        norm), [..., hidden], in a workspace buffer."""
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, positions, batch, ws)
        return self.norm(x, out=ws.get("final", x.shape))

    def prepare_inputs(self, input_ids, attention_mask=None) -> tuple[PackedBatch, np.ndarray]:
        """Validate the padded inputs and lay the real tokens out packed: (PackedBatch, ids)."""
        cfg = self.config
        ids = check_input_ids(input_ids)
        mask = check_attention_mask(attention_mask, ids.shape)
        lengths = mask.sum(axis=1)
        if lengths.max(initial=0) > cfg.max_positions:
            raise ValueError(f"sequence length {int(lengths.max())} exceeds the model's maximum of "
                             f"{cfg.max_positions} positions")
        batch = PackedBatch.from_mask(mask)
        flat = batch.gather(ids)
        check_id_range(flat, cfg.vocab_size, "input_ids", f"vocab_size={cfg.vocab_size}")
        return batch, flat

    def forward_packed(self, ids: np.ndarray, batch: PackedBatch) -> np.ndarray:
        """Packed ids [total_tokens] -> final hidden states [total_tokens, hidden]; each sequence's positions count
        its real tokens from 0."""
        positions = np.arange(batch.total_tokens) - np.repeat(batch.cu_seqlens[:-1], batch.lengths)
        return self.forward(ids, positions, batch, Workspace())  # a fresh workspace: its buffer is ours to return

    def __call__(self, input_ids, attention_mask=None) -> np.ndarray:
        batch, ids = self.prepare_inputs(input_ids, attention_mask)
        return batch.scatter(self.forward_packed(ids, batch))


@register_model("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
class LlamaForCausalLM(ChatMixin, GenerationMixin, LlamaPretrainedModel):
    """A Llama-family decoder with its language-model head (tied to embed_tokens when the config says so and the
    checkpoint has no lm_head.weight).

    `model(input_ids, attention_mask=None)` -> logits [B, T, vocab] (float32; zeros at padding);
    `generate` / `stream` on ids and `generate_text` / `stream_text` on strings (see cpuformer.generation);
    `chat` / `stream_chat` on messages with the folder's chat template (see cpuformer.chat)."""

    def __init__(self, config: LlamaConfig, store: WeightStore):
        self.config = config
        self.model = LlamaModel(config, store)
        tied = not store.has("lm_head.weight") and config.tie_word_embeddings
        if tied:
            head = self.model.embed_tokens.table
        else:
            head = store.take("lm_head.weight", (config.vocab_size, config.hidden_size), packed=True)
        self.lm_head = pack_linear(store, head)
        if tied:  # one copy of the matrix: embed_tokens now reads its rows from the packed head
            self.model.embed_tokens = TiedEmbedding(self.lm_head)
        self.generation_config = GenerationConfig(eos_token_id=config.eos_token_id,
                                                  stop_token_ids=config.eos_token_ids[1:])
        self.decode_states = DecodeStatePool()

    def on_loaded(self, checkpoint: Checkpoint) -> None:
        super().on_loaded(checkpoint)
        self.generation_config = checkpoint.generation_config(self.generation_config, self.config.vocab_size)
        self.load_chat(checkpoint.folder, checkpoint.config)

    # GenerationMixin contract
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_positions(self) -> int:
        return self.config.max_positions

    def new_kv_cache(self, batch: int, max_len: int) -> ops.KVCache:
        cfg = self.config
        return ops.KVCache(cfg.num_hidden_layers, batch, cfg.num_attention_heads, cfg.head_dim, max_len,
                           num_kv_heads=cfg.num_key_value_heads)

    def next_token_logits(self, ids: np.ndarray, positions: np.ndarray, batch: KVCacheBatch, workspace: Workspace,
                          out: np.ndarray) -> np.ndarray:
        hidden = self.model.forward(ids, positions, batch, workspace)
        # left padding: the last column is a real token in every row
        return self.lm_head(np.ascontiguousarray(hidden[:, -1]), out=out)

    def __call__(self, input_ids, attention_mask=None) -> np.ndarray:
        batch, ids = self.model.prepare_inputs(input_ids, attention_mask)
        return batch.scatter(self.lm_head(self.model.forward_packed(ids, batch)))
