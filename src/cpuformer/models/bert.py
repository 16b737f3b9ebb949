"""BERT encoders from Hugging Face checkpoints: BertModel, BertForMaskedLM (fill_mask), BertForSequenceClassification.

Attribute and weight names mirror the checkpoint (embeddings.word_embeddings, encoder.layer.N.attention.self.query,
...). Every forward pass runs on the packed real tokens of the batch ([total_tokens, hidden], no padding), with
varlen attention over `cu_seqlens`; outputs are scattered back to [B, T, ...] at the end.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import ops
from ..io import WeightStore, read_config
from ..inputs import check_attention_mask, check_id_range, check_input_ids, check_int_array
from ..layers import (Embedding, LayerNorm, PackedBatch, SelfAttention, Workspace, fused_activation,
                      take_fused_linear, take_linear)
from ..tokenizer import Tokenizer
from .registry import register_model

__all__ = [
    "BertConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertModel",
    "BertOutput",
    "MaskedLMOutput",
    "SequenceClassifierOutput",
]

# Buffers that checkpoints carry but the model recomputes.
_BUFFERS = ("*position_ids",)
# Task heads a bare encoder skips when loaded from a task checkpoint (as transformers' BertModel does).
_HEAD_PREFIXES = ("cls.*", "classifier.*")


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "BertConfig":
        ints = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size"]
        missing = [k for k in ints if k not in config]
        if missing:
            raise ValueError(f"config.json lacks {', '.join(missing)} (needed for a BERT model)")
        for key in ints:
            if not isinstance(config[key], int) or config[key] < (0 if key == "num_hidden_layers" else 1):
                raise ValueError(f"config {key} must be a positive int, got {config[key]!r}")
        if config["hidden_size"] % config["num_attention_heads"]:
            raise ValueError(
                f"hidden_size {config['hidden_size']} is not divisible by num_attention_heads "
                f"{config['num_attention_heads']}"
            )
        position_type = config.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(f"position_embedding_type {position_type!r} is not supported; only 'absolute'")
        hidden_act = config.get("hidden_act", "gelu")
        fused_activation(hidden_act)  # fails early with the list of supported names
        return cls(**{k: config[k] for k in ints}, hidden_act=hidden_act,
                   layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass
class BertOutput:
    last_hidden_state: np.ndarray  # [B, T, hidden]; zeros at padding positions
    pooler_output: np.ndarray | None  # [B, hidden], or None when the checkpoint has no pooler


@dataclass
class MaskedLMOutput:
    logits: np.ndarray  # [B, T, vocab]; zeros at padding positions
    last_hidden_state: np.ndarray


@dataclass
class SequenceClassifierOutput:
    logits: np.ndarray  # [B, num_labels]
    pooler_output: np.ndarray


class BertEmbeddings:
    """word + absolute position + token type embeddings, then layer norm."""

    def __init__(self, store: WeightStore, config: BertConfig, prefix: str = "embeddings"):
        h = config.hidden_size
        self.word_embeddings = Embedding.from_store(store, f"{prefix}.word_embeddings.weight", config.vocab_size, h)
        self.position_embeddings = Embedding.from_store(
            store, f"{prefix}.position_embeddings.weight", config.max_position_embeddings, h)
        self.token_type_embeddings = Embedding.from_store(
            store, f"{prefix}.token_type_embeddings.weight", config.type_vocab_size, h)
        self.LayerNorm = LayerNorm.from_store(store, f"{prefix}.LayerNorm", h, config.layer_norm_eps)

    def __call__(self, ids: np.ndarray, token_types: np.ndarray, positions: np.ndarray) -> np.ndarray:
        x = self.word_embeddings(ids)
        x += self.position_embeddings.table[positions]
        x += self.token_type_embeddings.table[token_types]
        return self.LayerNorm(x)


class BertLayer:
    """Post-LN block: LN(x + attn(x)), then LN(h + W2 act(W1 h)); residual adds fused into the GEMM stores."""

    def __init__(self, store: WeightStore, config: BertConfig, prefix: str):
        h, i = config.hidden_size, config.intermediate_size
        qkv = take_fused_linear(store, [f"{prefix}.attention.self.{n}" for n in ("query", "key", "value")], h, h)
        out = take_linear(store, f"{prefix}.attention.output.dense", h, h)
        self.attention = SelfAttention(qkv, out, config.num_attention_heads)
        self.attention_norm = LayerNorm.from_store(store, f"{prefix}.attention.output.LayerNorm", h,
                                                   config.layer_norm_eps)
        self.intermediate = take_linear(store, f"{prefix}.intermediate.dense", h, i,
                                        activation=fused_activation(config.hidden_act))
        self.output = take_linear(store, f"{prefix}.output.dense", i, h)
        self.output_norm = LayerNorm.from_store(store, f"{prefix}.output.LayerNorm", h, config.layer_norm_eps)

    def __call__(self, x: np.ndarray, cu_seqlens: np.ndarray, ws: Workspace) -> np.ndarray:
        n = x.shape[0]
        h = self.attention_norm(self.attention(x, cu_seqlens, residual=x, workspace=ws))
        inner = self.intermediate(h, out=ws.get("ffn", (n, self.intermediate.out_features)))
        return self.output_norm(self.output(inner, residual=h, out=ws.get("ffn_out", h.shape)))


class BertModel:
    """The BERT encoder. `model(input_ids, attention_mask=None, token_type_ids=None)` -> BertOutput."""

    def __init__(self, config: BertConfig, store: WeightStore, *, pooler: bool | None = None,
                 tokenizer: Tokenizer | None = None):
        """Takes every encoder weight from `store` (already prefix-stripped); pooler=None loads it if present."""
        self.config = config
        self.tokenizer = tokenizer
        self.embeddings = BertEmbeddings(store, config)
        self.encoder_layers = [BertLayer(store, config, f"encoder.layer.{n}")
                               for n in range(config.num_hidden_layers)]
        if pooler is None:
            pooler = store.has("pooler.dense.weight")
        self.pooler = take_linear(store, "pooler.dense", config.hidden_size, config.hidden_size) if pooler else None

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "BertModel":
        """Load a Hugging Face BERT folder (config.json, model.safetensors, tokenizer.json if present). A task
        checkpoint (BertForMaskedLM, ...) loads too: its `bert.` prefix is stripped and its head skipped."""
        config, store, tokenizer = _open_checkpoint(path)
        store.ignore(*_HEAD_PREFIXES)
        model = cls(config, store, tokenizer=tokenizer)
        store.assert_all_used()
        return model

    # --- inputs -------------------------------------------------------------------------------------------
    def _prepare(self, input_ids, attention_mask, token_type_ids):
        """Validate the padded inputs and lay the real tokens out packed."""
        cfg = self.config
        ids = check_input_ids(input_ids)
        t = ids.shape[1]
        if t > cfg.max_position_embeddings:
            raise ValueError(
                f"sequence length {t} exceeds max_position_embeddings={cfg.max_position_embeddings}; truncate the "
                "input (the tokenizer does this with max_length)"
            )
        mask = check_attention_mask(attention_mask, ids.shape)
        types = (np.zeros(ids.shape, np.int64) if token_type_ids is None
                 else check_int_array(token_type_ids, "token_type_ids", ids.shape))
        batch = PackedBatch.from_mask(mask)
        flat_ids, flat_types = batch.gather(ids), batch.gather(types)
        check_id_range(flat_ids, cfg.vocab_size, "input_ids", f"vocab_size={cfg.vocab_size}")
        check_id_range(flat_types, cfg.type_vocab_size, "token_type_ids", f"type_vocab_size={cfg.type_vocab_size}")
        return batch, flat_ids, flat_types

    # --- forward ------------------------------------------------------------------------------------------
    def forward_packed(self, ids: np.ndarray, token_types: np.ndarray, batch: PackedBatch) -> np.ndarray:
        """Packed ids / token types [total_tokens] -> hidden states [total_tokens, hidden]. Positions are the
        tokens' columns in the padded batch (batch.cols), as in transformers."""
        x = self.embeddings(ids, token_types, batch.cols)
        ws = Workspace()
        for layer in self.encoder_layers:
            x = layer(x, batch.cu_seqlens, ws)
        return x

    def pool(self, hidden: np.ndarray, batch: PackedBatch) -> np.ndarray | None:
        """tanh(dense(first token)) per sequence, or None without a pooler."""
        if self.pooler is None:
            return None
        return np.tanh(self.pooler(np.ascontiguousarray(batch.first_tokens(hidden))))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> BertOutput:
        batch, ids, types = self._prepare(input_ids, attention_mask, token_type_ids)
        hidden = self.forward_packed(ids, types, batch)
        return BertOutput(batch.scatter(hidden), self.pool(hidden, batch))

    def _require_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise ValueError("this model was loaded without a tokenizer.json, so it cannot take text")
        return self.tokenizer


def _open_checkpoint(path: str | os.PathLike) -> tuple[BertConfig, WeightStore, Tokenizer | None]:
    raw = read_config(path)
    config = BertConfig.from_dict(raw)
    store = WeightStore(path)
    store.strip_prefix("bert.")
    store.ignore(*_BUFFERS)
    tokenizer = None
    if (Path(path) / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_pretrained(path)
        tokenizer.max_length = min(tokenizer.max_length, config.max_position_embeddings)
    return config, store, tokenizer


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class BertForMaskedLM:
    """BERT + MLM head: transform (dense, act, LN) then a decoder tied to the word embeddings, plus a bias."""

    def __init__(self, config: BertConfig, store: WeightStore, tokenizer: Tokenizer | None = None):
        h, v = config.hidden_size, config.vocab_size
        self.config = config
        self.bert = BertModel(config, store, tokenizer=tokenizer)
        self.tokenizer = tokenizer
        self.transform = take_linear(store, "cls.predictions.transform.dense", h, h,
                                     activation=fused_activation(config.hidden_act))
        self.transform_norm = LayerNorm.from_store(store, "cls.predictions.transform.LayerNorm", h,
                                                   config.layer_norm_eps)
        # Tied checkpoints store the decoder weight only as the word embeddings (and its bias once).
        decoder_weight = (store.take("cls.predictions.decoder.weight", (v, h))
                          if store.has("cls.predictions.decoder.weight") else self.bert.embeddings.word_embeddings.table)
        names = [n for n in ("cls.predictions.bias", "cls.predictions.decoder.bias") if store.has(n)]
        bias = [store.take(n, (v,)) for n in names or ["cls.predictions.bias"]][-1]  # missing -> named error
        self.decoder = ops.PackedLinear(decoder_weight, bias)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "BertForMaskedLM":
        config, store, tokenizer = _open_checkpoint(path)
        if read_config(path).get("architectures", [None])[0] == "BertForPreTraining":
            store.ignore("cls.seq_relationship.*")  # next-sentence head: not part of masked LM
        model = cls(config, store, tokenizer)
        store.assert_all_used()
        return model

    def head(self, hidden: np.ndarray) -> np.ndarray:
        """[n, hidden] -> vocabulary logits [n, vocab]."""
        return self.decoder(self.transform_norm(self.transform(hidden)))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> MaskedLMOutput:
        batch, ids, types = self.bert._prepare(input_ids, attention_mask, token_type_ids)
        hidden = self.bert.forward_packed(ids, types, batch)
        return MaskedLMOutput(batch.scatter(self.head(hidden)), batch.scatter(hidden))

    def fill_mask(self, text: str | Sequence[str], top_k: int = 5):
        """Like transformers' fill-mask pipeline: per [MASK] in the text, the top_k predictions as dicts
        {score, token, token_str, sequence}. One text with one mask -> list of dicts; with several masks ->
        one list per mask; a list of texts -> one such result per text."""
        tok = self.bert._require_tokenizer()
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        if tok.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token")
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise ValueError("fill_mask needs at least one text")
        enc = tok.encode_batch(texts)
        batch, ids, types = self.bert._prepare(enc.input_ids, enc.attention_mask, enc.token_type_ids)
        hidden = self.bert.forward_packed(ids, types, batch)
        masked = np.flatnonzero(ids == tok.mask_token_id)
        seq_of = np.searchsorted(batch.cu_seqlens, masked, side="right") - 1
        missing = sorted(set(range(len(texts))) - set(seq_of.tolist()))
        if missing:
            raise ValueError(f"no mask token ({tok.mask_token}) found in text {missing[0]}: {texts[missing[0]]!r}")
        probs = _softmax(self.head(np.ascontiguousarray(hidden[masked])).astype(np.float64))
        k = min(top_k, probs.shape[1])
        masks_in = np.bincount(seq_of, minlength=len(texts))
        results: list[list] = [[] for _ in texts]
        for row, (pos, seq) in enumerate(zip(masked, seq_of)):
            best = np.argsort(-probs[row], kind="stable")[:k]
            start, end = batch.cu_seqlens[seq], batch.cu_seqlens[seq + 1]
            preds = []
            for token in best:
                filled = ids[start:end].copy()
                filled[pos - start] = token
                preds.append({"score": float(probs[row, token]), "token": int(token),
                              "token_str": tok.decode([token]),
                              # as the pipeline: with several masks the others stay visible, so keep specials
                              "sequence": tok.decode(filled, skip_special_tokens=masks_in[seq] == 1)})
            results[seq].append(preds)
        results = [r[0] if len(r) == 1 else r for r in results]
        return results[0] if isinstance(text, str) else results


class BertForSequenceClassification:
    """BERT + pooler + classifier: logits = classifier(pooler_output); `predict(texts)` names the labels."""

    def __init__(self, config: BertConfig, store: WeightStore, raw_config: dict[str, Any],
                 tokenizer: Tokenizer | None = None):
        self.config = config
        self.bert = BertModel(config, store, pooler=True, tokenizer=tokenizer)
        self.tokenizer = tokenizer
        num_labels = store.take("classifier.weight", (None, config.hidden_size)).shape[0]
        self.classifier = take_linear(store, "classifier", config.hidden_size, num_labels)
        id2label = raw_config.get("id2label") or {}
        self.id2label = {int(k): v for k, v in id2label.items()}
        for i in range(num_labels):
            self.id2label.setdefault(i, f"LABEL_{i}")
        self.problem_type = raw_config.get("problem_type") or (
            "regression" if num_labels == 1 else "single_label_classification")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "BertForSequenceClassification":
        config, store, tokenizer = _open_checkpoint(path)
        model = cls(config, store, read_config(path), tokenizer)
        store.assert_all_used()
        return model

    @property
    def num_labels(self) -> int:
        return self.classifier.out_features

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> SequenceClassifierOutput:
        batch, ids, types = self.bert._prepare(input_ids, attention_mask, token_type_ids)
        pooled = self.bert.pool(self.bert.forward_packed(ids, types, batch), batch)
        return SequenceClassifierOutput(self.classifier(pooled), pooled)

    def predict(self, texts: str | Sequence[str], text_pairs: Sequence[str] | None = None):
        """Top label per text as {"label", "score"} (softmax probability; sigmoid for multi-label; the raw
        value for regression). A single string gives one dict, a list gives a list."""
        tok = self.bert._require_tokenizer()
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        if not items:
            raise ValueError("predict needs at least one text")
        pairs = [text_pairs] if single and isinstance(text_pairs, str) else text_pairs
        enc = tok.encode_batch(items, pairs)
        logits = self(enc.input_ids, enc.attention_mask, enc.token_type_ids).logits.astype(np.float64)
        if self.problem_type == "regression":
            scores = logits
        elif self.problem_type == "multi_label_classification":
            scores = 1.0 / (1.0 + np.exp(-logits))
        else:
            scores = _softmax(logits)
        best = scores.argmax(axis=1)
        out = [{"label": self.id2label[int(i)], "score": float(scores[r, i])} for r, i in enumerate(best)]
        return out[0] if single else out


register_model("BertModel")(BertModel)
register_model("BertForMaskedLM", "BertForPreTraining")(BertForMaskedLM)
register_model("BertForSequenceClassification")(BertForSequenceClassification)
