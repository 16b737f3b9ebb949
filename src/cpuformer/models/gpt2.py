"""GPT-2 decoders from Hugging Face checkpoints: GPT2Model (hidden states) and GPT2LMHeadModel (logits, generate).

Attribute and weight names mirror the checkpoint (wte, wpe, h.N.attn.c_attn, h.N.mlp.c_fc, ln_f). GPT-2's Conv1D
weights are stored [in, out] and are packed as they are (layout="in_out"), never transposed. One block forward
runs on both token layouts (cpuformer.layers):
- `model(input_ids, attention_mask)` runs on the packed real tokens ([total_tokens, hidden], causal varlen
  attention, a PackedBatch) and scatters the result back to [B, T, ...].
- generation runs on the padded [B, T] batch through a preallocated KV cache (a KVCacheBatch): the whole prompt
  in one pass, then one token per step, with every activation in a buffer reused across layers and steps.
Positions are cumsum(attention_mask) - 1 per row, so left-padded prompts get the positions they would have alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import ops
from ..array_pool import pooled
from ..generation import DecodeStatePool, GenerationConfig, GenerationMixin
from ..io import WeightStore
from ..inputs import check_attention_mask, check_id_range, check_input_ids, check_packed_ids, check_packed_lengths
from ..layers import (Embedding, KVCacheBatch, LayerNorm, PackedBatch, SelfAttention, Workspace, fused_activation,
                      TiedEmbedding, pack_linear, take_linear)
from .base import (Checkpoint, PretrainedModel, config_bool, config_positive_float, config_sizes,
                   config_token_id)
from .registry import register_model

__all__ = ["GPT2Config", "GPT2LMHeadModel", "GPT2Model"]


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    n_inner: int
    activation_function: str
    layer_norm_epsilon: float
    scale_attn_weights: bool
    scale_attn_by_inverse_layer_idx: bool
    tie_word_embeddings: bool
    eos_token_id: int | None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "GPT2Config":
        sizes = config_sizes(config, "GPT-2", ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"],
                             may_be_zero=["n_layer"], divisible=("n_embd", "n_head"))
        if config_bool(config, "add_cross_attention", False):
            raise ValueError("add_cross_attention=True (GPT-2 as an encoder-decoder) is not supported")
        activation = config.get("activation_function", "gelu_new")
        if not isinstance(activation, str):
            raise ValueError(f"config activation_function must be an activation name, got {activation!r}")
        fused_activation(activation)  # fails early with the list of supported names
        n_inner = config.get("n_inner") or 4 * config["n_embd"]  # null or 0: transformers' 4 * n_embd
        if not isinstance(n_inner, int) or isinstance(n_inner, bool) or n_inner < 1:
            raise ValueError(f"config n_inner must be a positive int or null, got {n_inner!r}")
        return cls(**sizes, n_inner=n_inner, activation_function=activation,
                   layer_norm_epsilon=config_positive_float(config, "layer_norm_epsilon", 1e-5),
                   scale_attn_weights=config_bool(config, "scale_attn_weights", True),
                   scale_attn_by_inverse_layer_idx=config_bool(config, "scale_attn_by_inverse_layer_idx", False),
                   tie_word_embeddings=config_bool(config, "tie_word_embeddings", True),
                   eos_token_id=config_token_id(config, "eos_token_id", sizes["vocab_size"]))

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


class GPT2PretrainedModel(PretrainedModel):
    """What every GPT-2 class shares in loading: its config, weight names and tokenizer set-up."""

    config_class = GPT2Config
    model_types = ("gpt2",)
    base_prefix = "transformer."
    buffers = ("*.attn.bias", "*.attn.masked_bias")  # causal-mask buffers of older checkpoints: the kernel is causal

    @classmethod
    def tokenizer_options(cls, config: GPT2Config) -> dict[str, Any]:
        # Byte-level BPE decodes exactly; transformers' space clean-up would also break streamed pieces apart.
        return {"max_length": config.n_positions, "clean_up_spaces": False}


class GPT2Block:
    """Pre-LN block: x + c_proj(attn(ln_1(x))), then h + mlp.c_proj(gelu(mlp.c_fc(ln_2(h)))). GELU is fused into
    c_fc and both residual adds into the c_proj GEMMs."""

    def __init__(self, store: WeightStore, config: GPT2Config, prefix: str, layer: int):
        h, eps = config.n_embd, config.layer_norm_epsilon
        scale = 1.0 / np.sqrt(config.head_dim) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            scale /= layer + 1
        self.ln_1 = LayerNorm.from_store(store, f"{prefix}.ln_1", h, eps)
        self.attn = SelfAttention(take_linear(store, f"{prefix}.attn.c_attn", h, 3 * h, layout="in_out"),
                                  take_linear(store, f"{prefix}.attn.c_proj", h, h, layout="in_out"),
                                  config.n_head, scale=float(scale), causal=True, layer=layer)
        self.ln_2 = LayerNorm.from_store(store, f"{prefix}.ln_2", h, eps)
        self.c_fc = take_linear(store, f"{prefix}.mlp.c_fc", h, config.n_inner, layout="in_out",
                                activation=fused_activation(config.activation_function))
        self.c_proj = take_linear(store, f"{prefix}.mlp.c_proj", config.n_inner, h, layout="in_out")

    def __call__(self, x: np.ndarray, batch: PackedBatch | KVCacheBatch, ws: Workspace) -> np.ndarray:
        """x: [total_tokens, hidden] (packed) or [B, T, hidden] (cached) -> the same shape, in a workspace buffer
        (never x itself)."""
        h = self.attn(self.ln_1(x, out=ws.get("ln", x.shape)), batch, residual=x, workspace=ws)
        inner = self.c_fc(self.ln_2(h, out=ws.get("ln", h.shape)),
                          out=ws.get("ffn", h.shape[:-1] + (self.c_fc.out_features,)))
        return self.c_proj(inner, residual=h, out=ws.get("mlp_out", h.shape))


@register_model("GPT2Model")
class GPT2Model(GPT2PretrainedModel):
    """The GPT-2 transformer. `model(input_ids, attention_mask=None)` -> last hidden state [B, T, n_embd]
    (after ln_f; zeros at padding). A GPT2LMHeadModel checkpoint loads too (its `transformer.` prefix stripped,
    lm_head skipped)."""

    is_base_model = True

    def __init__(self, config: GPT2Config, store: WeightStore):
        h = config.n_embd
        self.config = config
        self.wte = Embedding.from_store(store, "wte.weight", config.vocab_size, h)
        self.wpe = Embedding.from_store(store, "wpe.weight", config.n_positions, h)
        self.h = [GPT2Block(store, config, f"h.{i}", i) for i in range(config.n_layer)]
        self.ln_f = LayerNorm.from_store(store, "ln_f", h, config.layer_norm_epsilon)

    @pooled
    def forward(self, ids: np.ndarray, positions: np.ndarray, batch: PackedBatch | KVCacheBatch,
                ws: Workspace) -> np.ndarray:
        """ids, positions: [total_tokens] (PackedBatch) or [B, T] (KVCacheBatch) -> final hidden states
        (after ln_f), [..., n_embd], in a workspace buffer."""
        cfg = self.config
        check_id_range(np.asarray(ids), cfg.vocab_size, "input_ids", f"vocab_size={cfg.vocab_size}")
        check_id_range(np.asarray(positions), cfg.n_positions, "positions", f"n_positions={cfg.n_positions}")
        x = self.wte(ids)
        x += self.wpe.table[positions]
        for block in self.h:
            x = block(x, batch, ws)
        return self.ln_f(x, out=ws.get("final", x.shape))

    def prepare_inputs(self, input_ids, attention_mask=None) -> tuple[PackedBatch, np.ndarray]:
        """Validate the padded inputs and lay the real tokens out packed: (PackedBatch, ids)."""
        cfg = self.config
        ids = check_input_ids(input_ids)
        mask = check_attention_mask(attention_mask, ids.shape)
        lengths = mask.sum(axis=1)
        if lengths.max() > cfg.n_positions:
            raise ValueError(f"sequence length {int(lengths.max())} exceeds n_positions={cfg.n_positions}")
        batch = PackedBatch.from_mask(mask)
        flat = batch.gather(ids)
        check_id_range(flat, cfg.vocab_size, "input_ids", f"vocab_size={cfg.vocab_size}")
        return batch, flat

    def forward_packed(self, ids: np.ndarray, batch: PackedBatch) -> np.ndarray:
        """Packed ids [total_tokens] -> final hidden states [total_tokens, n_embd]; each sequence's positions
        count its real tokens from 0. Ids and sequence lengths are checked (ValueError)."""
        cfg = self.config
        check_packed_lengths(batch.cu_seqlens, cfg.n_positions, f"n_positions={cfg.n_positions}")
        ids = check_packed_ids(ids, "input_ids", batch.total_tokens, cfg.vocab_size, f"vocab_size={cfg.vocab_size}")
        positions = np.arange(batch.total_tokens) - np.repeat(batch.cu_seqlens[:-1], batch.lengths)
        return self.forward(ids, positions, batch, Workspace())  # a fresh workspace: its buffer is ours to return

    def __call__(self, input_ids, attention_mask=None) -> np.ndarray:
        batch, ids = self.prepare_inputs(input_ids, attention_mask)
        return batch.scatter(self.forward_packed(ids, batch))


@register_model("GPT2LMHeadModel")
class GPT2LMHeadModel(GenerationMixin, GPT2PretrainedModel):
    """GPT-2 with its language-model head (tied to wte unless the checkpoint has its own lm_head.weight).

    `model(input_ids, attention_mask=None)` -> logits [B, T, vocab] (float32; zeros at padding);
    `generate` / `stream` on ids and `generate_text` / `stream_text` on strings (see cpuformer.generation)."""

    def __init__(self, config: GPT2Config, store: WeightStore):
        self.config = config
        self.transformer = GPT2Model(config, store)
        tied = not store.has("lm_head.weight") and config.tie_word_embeddings
        if tied:
            head = self.transformer.wte.table
        else:
            head = store.take("lm_head.weight", (config.vocab_size, config.n_embd), packed=True)
        self.lm_head = pack_linear(store, head)  # [vocab, n_embd] is nn.Linear's layout: packed once
        if tied:  # one copy of the matrix: wte now reads its rows from the packed head
            self.transformer.wte = TiedEmbedding(self.lm_head)
        self.generation_config = GenerationConfig(eos_token_id=config.eos_token_id)
        self.decode_states = DecodeStatePool()  # the KV cache of the last generate call, for the next

    def on_loaded(self, checkpoint: Checkpoint) -> None:
        super().on_loaded(checkpoint)
        self.generation_config = checkpoint.generation_config(self.generation_config, self.config.vocab_size)

    # GenerationMixin contract
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_positions(self) -> int:
        return self.config.n_positions

    def new_kv_cache(self, batch: int, max_len: int) -> ops.KVCache:
        cfg = self.config
        return ops.KVCache(cfg.n_layer, batch, cfg.n_head, cfg.head_dim, max_len)

    def next_token_logits(self, ids: np.ndarray, positions: np.ndarray, batch: KVCacheBatch, workspace: Workspace,
                          out: np.ndarray) -> np.ndarray:
        hidden = self.transformer.forward(ids, positions, batch, workspace)
        # left padding: the last column is a real token in every row
        return self.lm_head(np.ascontiguousarray(hidden[:, -1]), out=out)

    def __call__(self, input_ids, attention_mask=None) -> np.ndarray:
        batch, ids = self.transformer.prepare_inputs(input_ids, attention_mask)
        return batch.scatter(self.lm_head(self.transformer.forward_packed(ids, batch)))
