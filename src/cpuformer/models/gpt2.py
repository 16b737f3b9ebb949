"""GPT-2 decoders from Hugging Face checkpoints: GPT2Model (hidden states) and GPT2LMHeadModel (logits, generate).

Attribute and weight names mirror the checkpoint (wte, wpe, h.N.attn.c_attn, h.N.mlp.c_fc, ln_f). GPT-2's Conv1D
weights are stored [in, out] and are packed as they are (layout="in_out"), never transposed. Two paths:
- `model(input_ids, attention_mask)` runs on the packed real tokens ([total_tokens, hidden], causal varlen
  attention) and scatters the result back to [B, T, ...].
- generation runs on the padded [B, T] batch through a preallocated KVCache: the whole prompt in one pass, then
  one token per step, with every activation in a buffer reused across layers and steps.
Positions are cumsum(attention_mask) - 1 per row, so left-padded prompts get the positions they would have alone.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import ops
from ..generation import GenerationMixin
from ..io import WeightStore, read_config
from ..inputs import check_attention_mask, check_id_range, check_input_ids
from ..layers import Embedding, LayerNorm, PackedBatch, SelfAttention, Workspace, fused_activation, take_linear
from ..tokenizer import Tokenizer
from .registry import register_model

__all__ = ["GPT2Config", "GPT2LMHeadModel", "GPT2Model"]

# Causal-mask buffers that older checkpoints carry; the attention kernel applies causality itself.
_BUFFERS = ("*.attn.bias", "*.attn.masked_bias")


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
        ints = ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"]
        missing = [k for k in ints if k not in config]
        if missing:
            raise ValueError(f"config.json lacks {', '.join(missing)} (needed for a GPT-2 model)")
        for key in ints:
            if not isinstance(config[key], int) or config[key] < (0 if key == "n_layer" else 1):
                raise ValueError(f"config {key} must be a positive int, got {config[key]!r}")
        if config["n_embd"] % config["n_head"]:
            raise ValueError(f"n_embd {config['n_embd']} is not divisible by n_head {config['n_head']}")
        if config.get("add_cross_attention"):
            raise ValueError("add_cross_attention=True (GPT-2 as an encoder-decoder) is not supported")
        activation = config.get("activation_function", "gelu_new")
        fused_activation(activation)  # fails early with the list of supported names
        n_inner = config.get("n_inner") or 4 * config["n_embd"]
        eos = config.get("eos_token_id")
        eos = eos if isinstance(eos, int) and 0 <= eos < config["vocab_size"] else None
        return cls(**{k: config[k] for k in ints}, n_inner=int(n_inner), activation_function=activation,
                   layer_norm_epsilon=float(config.get("layer_norm_epsilon", 1e-5)),
                   scale_attn_weights=bool(config.get("scale_attn_weights", True)),
                   scale_attn_by_inverse_layer_idx=bool(config.get("scale_attn_by_inverse_layer_idx", False)),
                   tie_word_embeddings=bool(config.get("tie_word_embeddings", True)), eos_token_id=eos)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


class GPT2Block:
    """Pre-LN block: x + c_proj(attn(ln_1(x))), then h + mlp.c_proj(gelu(mlp.c_fc(ln_2(h)))). GELU is fused into
    c_fc and both residual adds into the c_proj GEMMs."""

    def __init__(self, store: WeightStore, config: GPT2Config, prefix: str, layer_idx: int):
        h, eps = config.n_embd, config.layer_norm_epsilon
        scale = 1.0 / np.sqrt(config.head_dim) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            scale /= layer_idx + 1
        self.layer_idx = layer_idx
        self.ln_1 = LayerNorm.from_store(store, f"{prefix}.ln_1", h, eps)
        self.attn = SelfAttention(take_linear(store, f"{prefix}.attn.c_attn", h, 3 * h, layout="in_out"),
                                  take_linear(store, f"{prefix}.attn.c_proj", h, h, layout="in_out"),
                                  config.n_head, scale=float(scale))
        self.ln_2 = LayerNorm.from_store(store, f"{prefix}.ln_2", h, eps)
        self.c_fc = take_linear(store, f"{prefix}.mlp.c_fc", h, config.n_inner, layout="in_out",
                                activation=fused_activation(config.activation_function))
        self.c_proj = take_linear(store, f"{prefix}.mlp.c_proj", config.n_inner, h, layout="in_out")

    def mlp(self, x: np.ndarray, ws: Workspace) -> np.ndarray:
        inner = self.c_fc(self.ln_2(x, out=ws.get("ln", x.shape)), out=ws.get("ffn", x.shape[:-1] + (self.c_fc.out_features,)))
        return self.c_proj(inner, residual=x, out=ws.get("mlp_out", x.shape))

    def forward_packed(self, x: np.ndarray, cu_seqlens: np.ndarray, ws: Workspace) -> np.ndarray:
        """x: packed [total_tokens, hidden] -> the same shape (in a workspace buffer, never x itself)."""
        h = self.attn(self.ln_1(x, out=ws.get("ln", x.shape)), cu_seqlens, residual=x, causal=True, workspace=ws)
        return self.mlp(h, ws)

    def forward_cached(self, x: np.ndarray, cache: ops.KVCache, mask: np.ndarray | None, ws: Workspace):
        """x: [B, T, hidden], the T newest tokens: their keys and values go into the cache, their queries attend
        to everything cached (mask [B, cached] marks left padding)."""
        n, h = x.shape[:-1], self.attn.hidden
        qkv = self.attn.qkv(self.ln_1(x, out=ws.get("ln", x.shape)), out=ws.get("qkv", n + (3 * h,)))
        cache.append(self.layer_idx, qkv[..., h:2 * h], qkv[..., 2 * h:])
        context = cache.attend(self.layer_idx, qkv[..., :h], mask, causal=True, scale=self.attn.scale,
                               out=ws.get("context", n + (h,)))
        h1 = self.attn.out(context, residual=x, out=ws.get("attn_out", x.shape))
        return self.mlp(h1, ws)


def _positions(mask: np.ndarray) -> np.ndarray:
    """cumsum(mask) - 1, and 0 at padding, as transformers' generate builds position_ids."""
    return np.maximum(np.cumsum(mask, axis=1) - 1, 0)


class GPT2Model:
    """The GPT-2 transformer. `model(input_ids, attention_mask=None)` -> last hidden state [B, T, n_embd]
    (after ln_f; zeros at padding)."""

    def __init__(self, config: GPT2Config, store: WeightStore, tokenizer: Tokenizer | None = None):
        h = config.n_embd
        self.config = config
        self.tokenizer = tokenizer
        self.wte = Embedding.from_store(store, "wte.weight", config.vocab_size, h)
        self.wpe = Embedding.from_store(store, "wpe.weight", config.n_positions, h)
        self.h = [GPT2Block(store, config, f"h.{i}", i) for i in range(config.n_layer)]
        self.ln_f = LayerNorm.from_store(store, "ln_f", h, config.layer_norm_epsilon)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "GPT2Model":
        """Load a Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json if present); a
        GPT2LMHeadModel checkpoint loads too (its `transformer.` prefix stripped, lm_head skipped)."""
        config, store, tokenizer = _open_checkpoint(path)
        store.ignore("lm_head.weight")
        model = cls(config, store, tokenizer)
        store.assert_all_used()
        return model

    def embed(self, ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        x = self.wte(ids)
        x += self.wpe.table[positions]
        return x

    def _prepare(self, input_ids, attention_mask) -> tuple[PackedBatch, np.ndarray]:
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
        count its real tokens from 0."""
        positions = np.arange(batch.total_tokens) - np.repeat(batch.cu_seqlens[:-1], batch.lengths)
        x = self.embed(ids, positions)
        ws = Workspace()
        for block in self.h:
            x = block.forward_packed(x, batch.cu_seqlens, ws)
        return self.ln_f(x)

    def __call__(self, input_ids, attention_mask=None) -> np.ndarray:
        batch, ids = self._prepare(input_ids, attention_mask)
        return batch.scatter(self.forward_packed(ids, batch))


class _DecodeBuffers:
    """The KV cache and activation buffers of one generate call. The model keeps them for the next call with the
    same batch size: a fresh cache pays a page fault per 4 KB on its first writes (a third of an 8-row prefill)."""

    def __init__(self, cfg: GPT2Config, batch: int, max_len: int):
        self.cache = ops.KVCache(cfg.n_layer, batch, cfg.n_head, cfg.head_dim, max_len)
        self.prefill_ws, self.step_ws = Workspace(), Workspace()
        self.logits = np.empty((batch, cfg.vocab_size), np.float32)

    def fits(self, batch: int, max_len: int) -> bool:
        return self.cache.batch == batch and self.cache.max_len >= max_len


class _DecodingSession:
    """One generate call: B rows of up to max_len tokens in a KV cache, one step at a time."""

    def __init__(self, model: "GPT2LMHeadModel", ids: np.ndarray, mask: np.ndarray | None, max_len: int):
        self.model, self.ids, self.mask = model, ids, mask
        batch = ids.shape[0]
        self.buffers = model._take_decode_buffers(batch, max_len)
        self.cache = self.buffers.cache
        if mask is not None:
            self.full_mask = np.ones((batch, max_len), np.uint8)
            self.full_mask[:, :ids.shape[1]] = mask
            self.next_position = mask.sum(axis=1)
        else:
            self.full_mask = None
            self.next_position = np.full(batch, ids.shape[1], np.int64)
        self.length = ids.shape[1]

    def close(self) -> None:
        """Hand the buffers back to the model for the next call (at most once)."""
        if self.buffers is not None:
            self.model._decode_buffers = self.buffers
            self.buffers = self.cache = None

    def _run(self, x: np.ndarray, ws: Workspace) -> np.ndarray:
        mask = None if self.full_mask is None else self.full_mask[:, :self.length]
        for block in self.model.transformer.h:
            x = block.forward_cached(x, self.cache, mask, ws)
        return x

    def prefill(self) -> np.ndarray:
        if self.mask is None:
            ids, positions = self.ids, np.arange(self.ids.shape[1])[None, :]
        else:  # padding gets id 0 (any valid id: the mask hides it) and position 0
            ids, positions = np.where(self.mask.astype(bool), self.ids, 0), _positions(self.mask)
        x = self._run(self.model.transformer.embed(ids, positions), self.buffers.prefill_ws)
        return self._head(np.ascontiguousarray(x[:, -1]))  # left padding: the last column is real in every row

    def step(self, tokens: np.ndarray) -> np.ndarray:
        x = self.model.transformer.embed(tokens[:, None], self.next_position[:, None])
        self.length += 1
        self.next_position += 1
        return self._head(self._run(x, self.buffers.step_ws)[:, 0])

    def _head(self, x: np.ndarray) -> np.ndarray:
        return self.model.lm_head(self.model.transformer.ln_f(x), out=self.buffers.logits)


class GPT2LMHeadModel(GenerationMixin):
    """GPT-2 with its language-model head (tied to wte unless the checkpoint has its own lm_head.weight).

    `model(input_ids, attention_mask=None)` -> logits [B, T, vocab] (float32; zeros at padding);
    `generate` / `stream` on ids and `generate_text` / `stream_text` on strings (see cpuformer.generation)."""

    def __init__(self, config: GPT2Config, store: WeightStore, tokenizer: Tokenizer | None = None):
        self.config = config
        self.transformer = GPT2Model(config, store, tokenizer)
        self.tokenizer = tokenizer
        if store.has("lm_head.weight") or not config.tie_word_embeddings:
            head = store.take("lm_head.weight", (config.vocab_size, config.n_embd))
        else:
            head = self.transformer.wte.table
        self.lm_head = ops.PackedLinear(head, None)  # [vocab, n_embd] is nn.Linear's layout: packed once
        self._decode_buffers: _DecodeBuffers | None = None  # kept from the last generate call
        self._decode_buffers_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "GPT2LMHeadModel":
        config, store, tokenizer = _open_checkpoint(path)
        model = cls(config, store, tokenizer)
        store.assert_all_used()
        return model

    # GenerationMixin contract
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_positions(self) -> int:
        return self.config.n_positions

    @property
    def eos_token_id(self) -> int | None:
        return self.config.eos_token_id

    def _take_decode_buffers(self, batch: int, max_len: int) -> _DecodeBuffers:
        # Taken, not shared: a second generate running at the same time (another thread, an unfinished stream)
        # finds none and makes its own.
        with self._decode_buffers_lock:
            buffers, self._decode_buffers = self._decode_buffers, None
        if buffers is not None and buffers.fits(batch, max_len):
            buffers.cache.reset()
            return buffers
        return _DecodeBuffers(self.config, batch, max_len)

    def start_decoding(self, input_ids: np.ndarray, attention_mask: np.ndarray | None, max_len: int):
        return _DecodingSession(self, input_ids, attention_mask, max_len)

    def __call__(self, input_ids, attention_mask=None) -> np.ndarray:
        batch, ids = self.transformer._prepare(input_ids, attention_mask)
        return batch.scatter(self.lm_head(self.transformer.forward_packed(ids, batch)))


def _open_checkpoint(path: str | os.PathLike) -> tuple[GPT2Config, WeightStore, Tokenizer | None]:
    config = GPT2Config.from_dict(read_config(path))
    store = WeightStore(path)
    store.strip_prefix("transformer.")
    store.ignore(*_BUFFERS)
    tokenizer = None
    if (Path(path) / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_pretrained(path, max_length=config.n_positions)
        # Byte-level BPE decodes exactly; transformers' space clean-up would also break streamed pieces apart.
        tokenizer.clean_up_spaces = False
    return config, store, tokenizer


register_model("GPT2Model")(GPT2Model)
register_model("GPT2LMHeadModel")(GPT2LMHeadModel)
