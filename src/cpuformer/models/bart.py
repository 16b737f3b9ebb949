"""BART and mBART encoder-decoders from Hugging Face checkpoints: BartModel (encoder + decoder hidden states) and
BartForConditionalGeneration / MBartForConditionalGeneration (logits, generate with greedy, sampling or beams).

Weight names mirror the checkpoint (model.shared, model.encoder.layers.N.self_attn.q_proj, ...,
model.decoder.layers.N.encoder_attn.k_proj, final_logits_bias). BART's layers are post-LN; mBART's are pre-LN with
a final layer norm after each stack (the only differences, so one class serves both, `pre_norm`).
- The encoder runs on the packed real tokens of a batch (PackedBatch, varlen attention), as BERT does; its
  positions are the tokens' columns (+ BART's offset of 2 into the position table).
- The decoder runs through a KV cache (KVCacheBatch): its causal self-attention appends each step's keys and
  values; cross-attention keys and values are computed ONCE per request from the encoder output
  (`CrossAttentionMemory`) and read by every step. `model(...)` (teacher forcing) runs the same decoder path over
  the whole decoder input at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import ops
from ..array_pool import pooled
from ..generation import DecodeState, DecodeStatePool, DecodingSession, GenerationConfig, GenerationMixin
from ..inputs import check_attention_mask, check_id_range, check_input_ids
from ..io import WeightStore
from ..layers import (Embedding, KVCacheBatch, LayerNorm, PackedBatch, SelfAttention, TiedEmbedding, Workspace,
                      fused_activation, pack_linear, take_fused_linear, take_linear)
from .base import Checkpoint, PretrainedModel, config_sizes
from .registry import register_model

__all__ = ["BartConfig", "BartForConditionalGeneration", "BartModel", "BartOutput", "MBartForConditionalGeneration"]

POSITION_OFFSET = 2  # BART's learned positions start at row 2 of the table
# Generation settings older BART checkpoints keep in config.json (transformers reads them as generation defaults)
_GENERATION_KEYS = ("num_beams", "length_penalty", "early_stopping", "no_repeat_ngram_size", "min_length",
                    "forced_bos_token_id", "forced_eos_token_id", "decoder_start_token_id", "eos_token_id",
                    "pad_token_id")


@dataclass(frozen=True)
class BartConfig:
    vocab_size: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_attention_heads: int
    decoder_attention_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    max_position_embeddings: int
    activation_function: str
    scale_embedding: bool
    tie_word_embeddings: bool
    pre_norm: bool  # mBART: layer norm before each sub-layer, plus a final one per stack
    generation: dict  # the generation defaults config.json carries (GenerationConfig options)

    @classmethod
    def from_dict(cls, config: dict[str, Any], pre_norm: bool | None = None) -> "BartConfig":
        sizes = config_sizes(config, "BART", ["vocab_size", "d_model", "encoder_layers", "decoder_layers",
                                              "encoder_attention_heads", "decoder_attention_heads",
                                              "encoder_ffn_dim", "decoder_ffn_dim", "max_position_embeddings"],
                             may_be_zero=["encoder_layers", "decoder_layers"])
        for heads in ("encoder_attention_heads", "decoder_attention_heads"):
            if sizes["d_model"] % sizes[heads]:
                raise ValueError(f"d_model {sizes['d_model']} is not divisible by {heads} {sizes[heads]}")
        activation = config.get("activation_function", "gelu")
        fused_activation(activation)
        if pre_norm is None:
            pre_norm = config.get("model_type") == "mbart"
        if config.get("normalize_before") or config.get("add_final_layer_norm"):
            pre_norm = True  # the old fairseq-style flags of mBART configs
        generation = {k: config[k] for k in _GENERATION_KEYS if config.get(k) is not None}
        return cls(**sizes, activation_function=activation, scale_embedding=bool(config.get("scale_embedding", False)),
                   tie_word_embeddings=bool(config.get("tie_word_embeddings", True)), pre_norm=bool(pre_norm),
                   generation=generation)

    @property
    def embed_scale(self) -> float:
        return float(np.sqrt(self.d_model)) if self.scale_embedding else 1.0


@dataclass
class BartOutput:
    last_hidden_state: np.ndarray  # decoder states [B, T_dec, d_model]
    encoder_last_hidden_state: np.ndarray  # [B, T_src, d_model], zeros at padding


class BartPretrainedModel(PretrainedModel):
    config_class = BartConfig
    model_types = ("bart", "mbart")
    base_prefix = "model."
    # older checkpoints also store the shared table under each stack's name (tied copies of model.shared)
    buffers = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "*.embed_positions._float_tensor")

    @classmethod
    def tokenizer_options(cls, config: BartConfig) -> dict[str, Any]:
        return {"max_positions": config.max_position_embeddings}


class CrossAttentionMemory:
    """The encoder side of cross-attention for one request: per decoder layer, keys and values [rows, S, 2 *
    d_model] (one fused GEMM over the packed encoder output, then laid out padded), and the source mask [rows, S].
    `expand(n)` repeats each prompt's rows n times (beams); beams of a prompt share them, so a beam reorder never
    touches them."""

    def __init__(self, kv: list[np.ndarray], mask: np.ndarray):
        self.kv, self.mask = kv, mask

    def expand(self, n: int) -> "CrossAttentionMemory":
        if n == 1:
            return self
        return CrossAttentionMemory([np.repeat(kv, n, axis=0) for kv in self.kv], np.repeat(self.mask, n, axis=0))


class BartAttentionLayer:
    """One encoder or decoder layer. Post-LN (BART): x = LN(x + attn(x)) [decoder: x = LN(x + cross(x))],
    x = LN(x + fc2(act(fc1(x)))). Pre-LN (mBART): x = x + attn(LN(x)), ..., x = x + fc2(act(fc1(LN(x)))).
    Residual adds are fused into the output GEMMs."""

    def __init__(self, store: WeightStore, prefix: str, d: int, heads: int, ffn: int, activation: str,
                 pre_norm: bool, causal: bool, cross: bool, layer: int):
        self.pre_norm, self.heads = pre_norm, heads
        names = [f"{prefix}.self_attn.{p}_proj" for p in "qkv"]
        self.self_attn = SelfAttention(take_fused_linear(store, names, d, d),
                                       take_linear(store, f"{prefix}.self_attn.out_proj", d, d), heads,
                                       causal=causal, layer=layer)
        self.self_attn_layer_norm = LayerNorm.from_store(store, f"{prefix}.self_attn_layer_norm", d, 1e-5)
        self.encoder_attn = None
        if cross:
            self.encoder_attn_q = take_linear(store, f"{prefix}.encoder_attn.q_proj", d, d)
            self.encoder_attn_kv = take_fused_linear(store, [f"{prefix}.encoder_attn.k_proj",
                                                             f"{prefix}.encoder_attn.v_proj"], d, d)
            self.encoder_attn = take_linear(store, f"{prefix}.encoder_attn.out_proj", d, d)
            self.encoder_attn_layer_norm = LayerNorm.from_store(store, f"{prefix}.encoder_attn_layer_norm", d, 1e-5)
        self.fc1 = take_linear(store, f"{prefix}.fc1", d, ffn, activation=activation)
        self.fc2 = take_linear(store, f"{prefix}.fc2", ffn, d)
        self.final_layer_norm = LayerNorm.from_store(store, f"{prefix}.final_layer_norm", d, 1e-5)

    def __call__(self, x: np.ndarray, batch: PackedBatch | KVCacheBatch, ws: Workspace,
                 memory: CrossAttentionMemory | None = None, index: int = 0) -> np.ndarray:
        """x: [total_tokens, d] (encoder, packed) or [B, T, d] (decoder, cached) -> the same shape, in a workspace
        buffer (never x itself). memory: the encoder side of cross-attention; index: this layer's entry in it."""
        pre = self.pre_norm
        h = self.self_attn(self.self_attn_layer_norm(x, out=ws.get("ln", x.shape)) if pre else x, batch,
                           residual=x, workspace=ws)
        if not pre:
            h = self.self_attn_layer_norm(h, out=ws.get("ln_attn", h.shape))
        if self.encoder_attn is not None:
            q = self.encoder_attn_q(self.encoder_attn_layer_norm(h, out=ws.get("ln", h.shape)) if pre else h,
                                    out=ws.get("cross_q", h.shape))
            kv = memory.kv[index]
            d = h.shape[-1]
            context = ops.multi_head_attention(q, kv[..., :d], kv[..., d:], self.heads, memory.mask,
                                               out=ws.get("cross_context", h.shape))
            h = self.encoder_attn(context, residual=h, out=ws.get("cross_out", h.shape))
            if not pre:
                h = self.encoder_attn_layer_norm(h, out=ws.get("ln_cross", h.shape))
        inner = self.fc1(self.final_layer_norm(h, out=ws.get("ln", h.shape)) if pre else h,
                         out=ws.get("ffn", h.shape[:-1] + (self.fc1.out_features,)))
        out = self.fc2(inner, residual=h, out=ws.get("ffn_out", h.shape))
        return out if pre else self.final_layer_norm(out, out=ws.get("layer_out", out.shape))


class BartStack:
    """The embeddings (scaled tokens + learned positions, layernorm_embedding), the layers and (mBART) the final
    layer norm of the encoder or the decoder."""

    def __init__(self, store: WeightStore, config: BartConfig, prefix: str, tokens, decoder: bool):
        c, d = config, config.d_model
        self.prefix, self.embed_tokens, self.embed_scale = prefix, tokens, config.embed_scale
        self.embed_positions = Embedding.from_store(store, f"{prefix}.embed_positions.weight",
                                                    c.max_position_embeddings + POSITION_OFFSET, d)
        self.layernorm_embedding = LayerNorm.from_store(store, f"{prefix}.layernorm_embedding", d, 1e-5)
        n, heads, ffn = ((c.decoder_layers, c.decoder_attention_heads, c.decoder_ffn_dim) if decoder else
                         (c.encoder_layers, c.encoder_attention_heads, c.encoder_ffn_dim))
        activation = fused_activation(c.activation_function)
        self.layers = [BartAttentionLayer(store, f"{prefix}.layers.{i}", d, heads, ffn, activation, c.pre_norm,
                                          causal=decoder, cross=decoder, layer=i) for i in range(n)]
        self.layer_norm = LayerNorm.from_store(store, f"{prefix}.layer_norm", d, 1e-5) if c.pre_norm else None

    @pooled
    def __call__(self, ids: np.ndarray, positions: np.ndarray, batch, ws: Workspace,
                 memory: CrossAttentionMemory | None = None) -> np.ndarray:
        x = self.embed_tokens(ids)
        if self.embed_scale != 1.0:
            x *= np.float32(self.embed_scale)
        x += self.embed_positions.table[positions + POSITION_OFFSET]
        x = self.layernorm_embedding(x, out=ws.get("embedded", x.shape))
        for i, layer in enumerate(self.layers):
            x = layer(x, batch, ws, memory, i)
        return x if self.layer_norm is None else self.layer_norm(x, out=ws.get("final", x.shape))


def _check_source(ids, mask, config: BartConfig) -> tuple[PackedBatch, np.ndarray]:
    """Validate encoder inputs (padding anywhere the mask says) and pack the real tokens."""
    ids = check_input_ids(ids)
    mask = check_attention_mask(mask, ids.shape)
    if ids.shape[1] > config.max_position_embeddings:
        raise ValueError(f"input length {ids.shape[1]} exceeds max_position_embeddings="
                         f"{config.max_position_embeddings}; truncate the input")
    batch = PackedBatch.from_mask(mask)
    flat = batch.gather(ids)
    check_id_range(flat, config.vocab_size, "input_ids", f"vocab_size={config.vocab_size}")
    return batch, flat


@register_model("BartModel", "MBartModel")
class BartModel(BartPretrainedModel):
    """The BART encoder-decoder without a head. `model(input_ids, attention_mask=None, decoder_input_ids=...)` ->
    BartOutput; `encode(input_ids, attention_mask)` -> the encoder's last hidden state [B, T, d_model]."""

    is_base_model = True

    def __init__(self, config: BartConfig, store: WeightStore, shared=None):
        self.config = config
        self.shared = shared if shared is not None else Embedding.from_store(store, "shared.weight",
                                                                             config.vocab_size, config.d_model)
        self.encoder = BartStack(store, config, "encoder", self.shared, decoder=False)
        self.decoder = BartStack(store, config, "decoder", self.shared, decoder=True)

    def set_token_table(self, table) -> None:
        """Both stacks read token rows from `table` (a TiedEmbedding of the packed head)."""
        self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = table

    # --- encoder --------------------------------------------------------------------------------------------
    def encode_packed(self, ids: np.ndarray, batch: PackedBatch) -> np.ndarray:
        """Packed ids [total_tokens] -> encoder states [total_tokens, d_model]; positions are the columns."""
        return self.encoder(ids, batch.cols, batch, Workspace())

    def encode(self, input_ids, attention_mask=None) -> np.ndarray:
        batch, ids = _check_source(input_ids, attention_mask, self.config)
        return batch.scatter(self.encode_packed(ids, batch))

    def cross_attention_memory(self, states: np.ndarray, batch: PackedBatch) -> CrossAttentionMemory:
        """Every decoder layer's cross-attention keys and values of the packed encoder states, padded to
        [B, S, 2 * d_model] (zeros at padding, which the mask hides)."""
        mask = np.zeros(batch.shape, np.uint8)
        mask[batch.rows, batch.cols] = 1
        kv = [batch.scatter(layer.encoder_attn_kv(states)) for layer in self.decoder.layers]
        return CrossAttentionMemory(kv, mask)

    # --- decoder --------------------------------------------------------------------------------------------
    def decode(self, ids: np.ndarray, positions: np.ndarray, batch: KVCacheBatch, memory: CrossAttentionMemory,
               ws: Workspace) -> np.ndarray:
        """ids, positions [B, T] of the newest decoder tokens (their keys and values go into batch's cache) ->
        decoder states [B, T, d_model] in a workspace buffer."""
        return self.decoder(ids, positions, batch, ws, memory)

    def new_kv_cache(self, batch: int, max_len: int) -> ops.KVCache:
        c = self.config
        return ops.KVCache(max(c.decoder_layers, 1), batch, c.decoder_attention_heads,
                           c.d_model // c.decoder_attention_heads, max_len)

    def teacher_forced(self, input_ids, attention_mask, decoder_input_ids) -> tuple[np.ndarray, np.ndarray]:
        """(decoder states [B, T_dec, d], encoder states [B, T_src, d]) for whole decoder inputs."""
        batch, ids = _check_source(input_ids, attention_mask, self.config)
        try:
            dec = check_input_ids(decoder_input_ids)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"decoder_input_ids: {exc}") from None
        if dec.shape[0] != batch.shape[0]:
            raise ValueError(f"decoder_input_ids has {dec.shape[0]} rows; input_ids has {batch.shape[0]}")
        if dec.shape[1] > self.config.max_position_embeddings:
            raise ValueError(f"decoder_input_ids length {dec.shape[1]} exceeds max_position_embeddings="
                             f"{self.config.max_position_embeddings}")
        check_id_range(dec, self.config.vocab_size, "decoder_input_ids", f"vocab_size={self.config.vocab_size}")
        states = self.encode_packed(ids, batch)
        memory = self.cross_attention_memory(states, batch)
        cached = KVCacheBatch(self.new_kv_cache(dec.shape[0], dec.shape[1]))
        cached.advance(dec.shape[1])
        positions = np.broadcast_to(np.arange(dec.shape[1]), dec.shape)
        return self.decode(dec, positions, cached, memory, Workspace()), batch.scatter(states)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None) -> BartOutput:
        if decoder_input_ids is None:
            raise ValueError("decoder_input_ids is required (BART's decoder input; generation starts it with "
                             "decoder_start_token_id)")
        decoded, encoded = self.teacher_forced(input_ids, attention_mask, decoder_input_ids)
        return BartOutput(decoded, encoded)


class BartDecodingSession(DecodingSession):
    """A generate call of an encoder-decoder: the encoder runs once over the prompts and each decoder layer's
    cross-attention keys and values are computed once from it; then decoding starts from decoder_start_token_id
    (no padding: every row's decoder tokens sit at the same positions)."""

    def __init__(self, model: "BartForConditionalGeneration", input_ids, attention_mask, max_len: int, expand: int,
                 start_ids: np.ndarray | None = None):
        base = model.model
        batch, ids = _check_source(input_ids, attention_mask, model.config)
        self.memory = base.cross_attention_memory(base.encode_packed(ids, batch), batch).expand(expand)
        rows = batch.shape[0] * expand
        self.model, self.mask = model, None
        self.ids = (np.full((rows, 1), model.decoder_start_id, np.int64) if start_ids is None
                    else np.ascontiguousarray(start_ids, np.int64))
        self.state = model.decode_states.take(rows, max_len) or DecodeState(model.new_kv_cache(rows, max_len),
                                                                            model.vocab_size)
        self.next_position = np.ones(rows, np.int64)
        self.batch = KVCacheBatch(self.state.cache)

    def _run(self, ids: np.ndarray, positions: np.ndarray, ws: Workspace) -> np.ndarray:
        self.batch.advance(ids.shape[1])
        hidden = self.model.model.decode(ids, positions, self.batch, self.memory, ws)
        return self.model.head(np.ascontiguousarray(hidden[:, -1]), out=self.state.logits)


@register_model("BartForConditionalGeneration", "MBartForConditionalGeneration")
class BartForConditionalGeneration(GenerationMixin, BartPretrainedModel):
    """BART (or mBART) with its language-model head (tied to model.shared unless the checkpoint has its own
    lm_head.weight) plus final_logits_bias.

    `model(input_ids, attention_mask=None, decoder_input_ids=...)` -> logits [B, T_dec, vocab];
    `generate(input_ids, attention_mask=...)` -> decoder ids [B * num_return_sequences, 1 + new] (the start token,
    then the generated ones), with greedy search, sampling or beam search as cpuformer.generation describes;
    `generate_text` / `stream_text` on strings."""

    padding_side = "right"  # text prompts are encoder inputs
    is_encoder_decoder = True

    def __init__(self, config: BartConfig, store: WeightStore):
        self.config = config
        shared = store.take("shared.weight", (config.vocab_size, config.d_model), packed=True)
        tied = not store.has("lm_head.weight") or config.tie_word_embeddings
        if store.has("lm_head.weight") and tied:
            store.ignore("lm_head.weight")  # a saved copy of the tied table
        head = shared if tied else store.take("lm_head.weight", (config.vocab_size, config.d_model), packed=True)
        bias = (store.take("final_logits_bias", (1, config.vocab_size), packed=True).reshape(-1)
                if store.has("final_logits_bias") else np.zeros(config.vocab_size, np.float32))
        self.lm_head = pack_linear(store, head, np.ascontiguousarray(bias, np.float32))
        table = TiedEmbedding(self.lm_head) if tied else Embedding(np.array(shared))
        self.model = BartModel(config, store, shared=table)
        g = config.generation
        self.generation_config = GenerationConfig().replace(**{
            k: v for k, v in g.items() if isinstance(v, (int, float, str)) and not
            (k.endswith("token_id") and not 0 <= v < config.vocab_size)})
        self.decode_states = DecodeStatePool()

    def on_loaded(self, checkpoint: Checkpoint) -> None:
        super().on_loaded(checkpoint)
        self.generation_config = checkpoint.generation_config(self.generation_config, self.config.vocab_size)

    def head(self, hidden: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """[n, d_model] -> logits [n, vocab] (+ final_logits_bias, the packed head's bias)."""
        return self.lm_head(hidden, out=out)

    # --- GenerationMixin contract -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_positions(self) -> int:
        return self.config.max_position_embeddings

    @property
    def decoder_start_id(self) -> int:
        start = self.generation_config.decoder_start_token_id
        if start is None:
            start = self.generation_config.eos_token_id  # BART's convention: decoding starts from eos
        if start is None:
            raise ValueError("the model has no decoder_start_token_id (nor an eos to start from); pass "
                             "decoder_start_token_id=...")
        return start

    def new_kv_cache(self, batch: int, max_len: int) -> ops.KVCache:
        return self.model.new_kv_cache(batch, max_len)

    def start_decoding(self, input_ids, attention_mask, max_len: int, expand: int = 1,
                       decoder_prompt: np.ndarray | None = None) -> BartDecodingSession:
        start = None if decoder_prompt is None else np.repeat(decoder_prompt[:, :1], expand, axis=0)
        return BartDecodingSession(self, input_ids, attention_mask, max_len, expand, start)

    def decoder_prompt(self, request) -> tuple[np.ndarray, None]:
        start = request.config.decoder_start_token_id
        start = self.decoder_start_id if start is None else start
        return np.full((request.ids.shape[0], 1), start, np.int64), None

    def check_lengths(self, ids: np.ndarray, config: GenerationConfig) -> None:
        limit = self.max_positions
        if ids.shape[1] > limit:
            raise ValueError(f"input length {ids.shape[1]} exceeds max_position_embeddings={limit}; truncate it")
        if 1 + config.max_new_tokens > limit:
            raise ValueError(f"1 decoder start token + max_new_tokens {config.max_new_tokens} exceeds "
                             f"max_position_embeddings={limit}; generate fewer tokens")

    def check_prompt(self, input_ids, attention_mask) -> tuple[np.ndarray, np.ndarray | None]:
        """Encoder inputs may be padded anywhere the mask says (tokenizers pad on the right)."""
        batch, _ = _check_source(input_ids, attention_mask, self.config)
        ids = check_input_ids(input_ids)
        mask = None if attention_mask is None else check_attention_mask(attention_mask, ids.shape)
        return ids, mask

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None) -> np.ndarray:
        if decoder_input_ids is None:
            raise ValueError("decoder_input_ids is required (BART's decoder input; generation starts it with "
                             "decoder_start_token_id)")
        decoded, _ = self.model.teacher_forced(input_ids, attention_mask, decoder_input_ids)
        b, t, d = decoded.shape
        return self.head(np.ascontiguousarray(decoded.reshape(b * t, d))).reshape(b, t, -1)


# mBART differs only by its pre-LN layers and final layer norms (model_type "mbart" selects them).
MBartForConditionalGeneration = BartForConditionalGeneration
