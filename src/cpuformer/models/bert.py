"""BERT encoders from Hugging Face checkpoints: BertModel, BertForMaskedLM (fill_mask), BertForSequenceClassification.

Attribute and weight names mirror the checkpoint (embeddings.word_embeddings, encoder.layer.N.attention.self.query,
...). Every forward pass runs on the packed real tokens of the batch ([total_tokens, hidden], no padding), with
varlen attention over `cu_seqlens`; outputs are scattered back to [B, T, ...] at the end.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..io import WeightStore
from ..inputs import check_attention_mask, check_id_range, check_input_ids, check_int_array
from ..layers import (Embedding, LayerNorm, PackedBatch, SelfAttention, Workspace, fused_activation, pack_linear,
                      TiedEmbedding, take_fused_linear, take_linear)
from .base import PretrainedModel, config_sizes
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
    # for sequence classification: label names by class index, and how logits become scores
    id2label: dict[int, str] = field(default_factory=dict, compare=False, hash=False)
    problem_type: str | None = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "BertConfig":
        sizes = config_sizes(config, "BERT", ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                              "intermediate_size", "max_position_embeddings", "type_vocab_size"],
                             may_be_zero=["num_hidden_layers"], divisible=("hidden_size", "num_attention_heads"))
        position_type = config.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(f"position_embedding_type {position_type!r} is not supported; only 'absolute'")
        hidden_act = config.get("hidden_act", "gelu")
        fused_activation(hidden_act)  # fails early with the list of supported names
        id2label = config.get("id2label") or {}
        if not isinstance(id2label, dict):
            raise ValueError(f"config id2label must be an object of index -> label, got {id2label!r}")
        try:
            labels = {int(k): str(v) for k, v in id2label.items()}
        except ValueError:
            raise ValueError(f"config id2label keys must be integers, got {list(id2label)!r}") from None
        return cls(**sizes, hidden_act=hidden_act,
                   layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)), id2label=labels,
                   problem_type=config.get("problem_type"))

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


class BertPretrainedModel(PretrainedModel):
    """What every BERT class shares in loading: its config, weight names and tokenizer set-up."""

    config_class = BertConfig
    model_types = ("bert",)
    base_prefix = "bert."
    buffers = ("*position_ids",)  # checkpoints carry them; the model recomputes them

    @classmethod
    def tokenizer_options(cls, config: BertConfig) -> dict[str, Any]:
        return {"max_positions": config.max_position_embeddings}


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

    def __call__(self, x: np.ndarray, batch: PackedBatch, ws: Workspace) -> np.ndarray:
        n = x.shape[0]
        h = self.attention_norm(self.attention(x, batch, residual=x, workspace=ws))
        inner = self.intermediate(h, out=ws.get("ffn", (n, self.intermediate.out_features)))
        return self.output_norm(self.output(inner, residual=h, out=ws.get("ffn_out", h.shape)))


@register_model("BertModel")
class BertModel(BertPretrainedModel):
    """The BERT encoder. `model(input_ids, attention_mask=None, token_type_ids=None)` -> BertOutput.

    `BertModel.from_pretrained(folder)` also loads the encoder of a task checkpoint (BertForMaskedLM,
    BertForQuestionAnswering, ...): its `bert.` prefix is stripped and the task head skipped, as transformers does."""

    is_base_model = True

    def __init__(self, config: BertConfig, store: WeightStore, *, pooler: bool | None = None):
        """Takes every encoder weight from `store` (already prefix-stripped); pooler=None loads it if present."""
        self.config = config
        self.embeddings = BertEmbeddings(store, config)
        self.encoder_layers = [BertLayer(store, config, f"encoder.layer.{n}")
                               for n in range(config.num_hidden_layers)]
        if pooler is None:
            pooler = store.has("pooler.dense.weight")
        self.pooler = take_linear(store, "pooler.dense", config.hidden_size, config.hidden_size) if pooler else None

    # --- inputs -------------------------------------------------------------------------------------------
    def prepare_inputs(self, input_ids, attention_mask=None, token_type_ids=None):
        """Validate the padded inputs and lay the real tokens out packed: (PackedBatch, ids, token types)."""
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
            x = layer(x, batch, ws)
        return x

    def pool(self, hidden: np.ndarray, batch: PackedBatch) -> np.ndarray | None:
        """tanh(dense(first token)) per sequence, or None without a pooler."""
        if self.pooler is None:
            return None
        return np.tanh(self.pooler(np.ascontiguousarray(batch.first_tokens(hidden))))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> BertOutput:
        batch, ids, types = self.prepare_inputs(input_ids, attention_mask, token_type_ids)
        hidden = self.forward_packed(ids, types, batch)
        return BertOutput(batch.scatter(hidden), self.pool(hidden, batch))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@register_model("BertForMaskedLM", "BertForPreTraining")
class BertForMaskedLM(BertPretrainedModel):
    """BERT + MLM head: transform (dense, act, LN) then a decoder tied to the word embeddings, plus a bias."""

    unused_heads = {"BertForPreTraining": ("cls.seq_relationship.*",)}  # next-sentence head: not masked LM

    def __init__(self, config: BertConfig, store: WeightStore):
        h, v = config.hidden_size, config.vocab_size
        self.config = config
        self.bert = BertModel(config, store)
        self.transform = take_linear(store, "cls.predictions.transform.dense", h, h,
                                     activation=fused_activation(config.hidden_act))
        self.transform_norm = LayerNorm.from_store(store, "cls.predictions.transform.LayerNorm", h,
                                                   config.layer_norm_eps)
        # Tied checkpoints store the decoder weight only as the word embeddings (and its bias once).
        tied = not store.has("cls.predictions.decoder.weight")
        decoder_weight = (self.bert.embeddings.word_embeddings.table if tied
                          else store.take("cls.predictions.decoder.weight", (v, h), packed=True))
        names = [n for n in ("cls.predictions.bias", "cls.predictions.decoder.bias") if store.has(n)]
        bias = [store.take(n, (v,), packed=True) for n in names or ["cls.predictions.bias"]][-1]  # missing -> named error
        self.decoder = pack_linear(store, decoder_weight, bias)
        if tied:  # one copy of the matrix: the word embeddings now read their rows from the packed decoder
            self.bert.embeddings.word_embeddings = TiedEmbedding(self.decoder)

    def head(self, hidden: np.ndarray) -> np.ndarray:
        """[n, hidden] -> vocabulary logits [n, vocab]."""
        return self.decoder(self.transform_norm(self.transform(hidden)))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> MaskedLMOutput:
        batch, ids, types = self.bert.prepare_inputs(input_ids, attention_mask, token_type_ids)
        hidden = self.bert.forward_packed(ids, types, batch)
        return MaskedLMOutput(batch.scatter(self.head(hidden)), batch.scatter(hidden))

    def fill_mask(self, text: str | Sequence[str], top_k: int = 5):
        """Like transformers' fill-mask pipeline: per [MASK] in the text, the top_k predictions as dicts
        {score, token, token_str, sequence}. One text with one mask -> list of dicts; with several masks ->
        one list per mask; a list of texts -> one such result per text."""
        tok = self.require_tokenizer()
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        if tok.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token")
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise ValueError("fill_mask needs at least one text")
        enc = tok.encode_batch(texts)
        batch, ids, types = self.bert.prepare_inputs(enc.input_ids, enc.attention_mask, enc.token_type_ids)
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


@register_model("BertForSequenceClassification")
class BertForSequenceClassification(BertPretrainedModel):
    """BERT + pooler + classifier: logits = classifier(pooler_output); `predict(texts)` names the labels."""

    def __init__(self, config: BertConfig, store: WeightStore):
        self.config = config
        self.bert = BertModel(config, store, pooler=True)
        num_labels = store.take("classifier.weight", (None, config.hidden_size), packed=True).shape[0]
        self.classifier = take_linear(store, "classifier", config.hidden_size, num_labels)
        self.id2label = {i: config.id2label.get(i, f"LABEL_{i}") for i in range(num_labels)}
        self.problem_type = config.problem_type or (
            "regression" if num_labels == 1 else "single_label_classification")

    @property
    def num_labels(self) -> int:
        return self.classifier.out_features

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> SequenceClassifierOutput:
        batch, ids, types = self.bert.prepare_inputs(input_ids, attention_mask, token_type_ids)
        pooled = self.bert.pool(self.bert.forward_packed(ids, types, batch), batch)
        return SequenceClassifierOutput(self.classifier(pooled), pooled)

    def predict(self, texts: str | Sequence[str], text_pairs: Sequence[str] | None = None):
        """Top label per text as {"label", "score"} (softmax probability; sigmoid for multi-label; the raw
        value for regression). A single string gives one dict, a list gives a list."""
        tok = self.require_tokenizer()
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

