"""Task heads shared by every encoder architecture (BERT, RoBERTa / XLM-RoBERTa, DistilBERT, ELECTRA).

A task model is an encoder (the architecture's base model, kept under the checkpoint's own attribute name:
`bert`, `roberta`, `distilbert`, `electra`) plus a head. What the head does with the encoder's packed hidden
states is the same for every architecture; only its weights' names and its activation differ, so each head is
written once here and an architecture file declares the rest:

    encoder_attr        the attribute (and checkpoint prefix) of the base model: "roberta"
    base_model_class    the architecture's base model class
    build_head(config, store)   the architecture's head weights (for the heads that differ by architecture)

Heads here: sequence classification (`predict`, sentence pairs through `text_pairs`) and masked LM
(`fill_mask`). Question answering and token classification are in their own files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from .. import ops
from ..io import WeightStore
from ..layers import PackedBatch, fused_activation, take_linear
from .base import PretrainedModel

__all__ = [
    "EncoderTaskModel",
    "FirstTokenClassifier",
    "MaskedLMModel",
    "MaskedLMOutput",
    "SequenceClassificationModel",
    "SequenceClassifierOutput",
    "label_names",
    "softmax",
]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def label_names(config: Any, num_labels: int) -> dict[int, str]:
    """Class index -> label, from config.json's id2label (LABEL_i where it names none, as transformers)."""
    return {i: config.id2label.get(i, f"LABEL_{i}") for i in range(num_labels)}


@dataclass
class MaskedLMOutput:
    logits: np.ndarray  # [B, T, vocab]; zeros at padding positions
    last_hidden_state: np.ndarray


@dataclass
class SequenceClassifierOutput:
    logits: np.ndarray  # [B, num_labels]
    pooler_output: np.ndarray  # [B, hidden]: the first token after the head's dense layer and activation
    last_hidden_state: np.ndarray | None = None  # [B, T, hidden]; zeros at padding positions


class EncoderTaskModel(PretrainedModel):
    """An encoder with a task head; the encoder is `self.<encoder_attr>` (also reachable as `self.encoder`)."""

    encoder_attr: ClassVar[str] = "encoder"
    base_model_class: ClassVar[type]

    def build_encoder(self, config: Any, store: WeightStore, **options: Any):
        self.config = config
        encoder = self.base_model_class(config, store, **options)
        setattr(self, self.encoder_attr, encoder)
        return encoder

    @property
    def encoder(self):
        return getattr(self, self.encoder_attr)

    def encode(self, input_ids, attention_mask=None, token_type_ids=None):
        """Validated padded inputs -> (PackedBatch, packed ids, packed hidden states [total_tokens, hidden])."""
        batch, ids, types = self.encoder.prepare_inputs(input_ids, attention_mask, token_type_ids)
        return batch, ids, self.encoder.forward_packed(ids, types, batch)

    @staticmethod
    def text_list(texts: str | Sequence[str], what: str) -> list[str]:
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            raise ValueError(f"{what} needs at least one text")
        bad = next((i for i, t in enumerate(items) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"texts must be strings; item {bad} is {type(items[bad]).__name__}")
        return items


class FirstTokenClassifier:
    """The classification head of every encoder: first token -> dense -> activation -> out projection.

    BERT's pooler (tanh), RoBERTa's classifier.dense (tanh), DistilBERT's pre_classifier (relu) and ELECTRA's
    classifier.dense (gelu) differ only in names and activation; relu / gelu are fused into the dense GEMM."""

    def __init__(self, dense: ops.PackedLinear, activation: str, out: ops.PackedLinear):
        self.dense, self.activation, self.out = dense, activation, out

    @classmethod
    def from_store(cls, store: WeightStore, dense: str, out: str, hidden: int, activation: str):
        fused = "none" if activation == "tanh" else fused_activation(activation)
        dense_linear = take_linear(store, dense, hidden, hidden, activation=fused)
        num_labels = store.take(f"{out}.weight", (None, hidden), packed=True).shape[0]
        return cls(dense_linear, activation, take_linear(store, out, hidden, num_labels))

    @property
    def num_labels(self) -> int:
        return self.out.out_features

    def pooled(self, hidden: np.ndarray, batch: PackedBatch) -> np.ndarray:
        x = self.dense(np.ascontiguousarray(batch.first_tokens(hidden)))
        return np.tanh(x) if self.activation == "tanh" else x

    def __call__(self, hidden: np.ndarray, batch: PackedBatch) -> tuple[np.ndarray, np.ndarray]:
        pooled = self.pooled(hidden, batch)
        return self.out(pooled), pooled


class SequenceClassificationModel(EncoderTaskModel):
    """Encoder + FirstTokenClassifier. `model(ids, mask, types).logits`; `predict(texts, text_pairs)`."""

    def __init__(self, config: Any, store: WeightStore):
        self.build_encoder(config, store)
        self.classifier_head = self.build_head(config, store)
        self.id2label = label_names(config, self.num_labels)
        self.problem_type = config.problem_type or (
            "regression" if self.num_labels == 1 else "single_label_classification")

    def build_head(self, config: Any, store: WeightStore) -> FirstTokenClassifier:
        raise NotImplementedError

    @property
    def num_labels(self) -> int:
        return self.classifier_head.num_labels

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> SequenceClassifierOutput:
        batch, _, hidden = self.encode(input_ids, attention_mask, token_type_ids)
        logits, pooled = self.classifier_head(hidden, batch)
        return SequenceClassifierOutput(logits, pooled, batch.scatter(hidden))

    def logits_for_texts(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> np.ndarray:
        """float32 [N, num_labels] for texts (or text pairs: NLI premise / hypothesis, query / document)."""
        enc = self.require_tokenizer().encode_batch(texts, text_pairs)
        return self(enc.input_ids, enc.attention_mask, enc.token_type_ids).logits

    def predict(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None):
        """Top label per text as {"label", "score"} (softmax probability; sigmoid for multi-label; the raw
        value for regression). A single string gives one dict, a list gives a list. text_pairs: the second
        text of each pair (sentence-pair classification such as NLI)."""
        single = isinstance(texts, str)
        items = self.text_list(texts, "predict")
        pairs = [text_pairs] if isinstance(text_pairs, str) else text_pairs
        logits = self.logits_for_texts(items, pairs).astype(np.float64)
        if self.problem_type == "regression":
            scores = logits
        elif self.problem_type == "multi_label_classification":
            scores = 1.0 / (1.0 + np.exp(-logits))
        else:
            scores = softmax(logits)
        best = scores.argmax(axis=1)
        out = [{"label": self.id2label[int(i)], "score": float(scores[r, i])} for r, i in enumerate(best)]
        return out[0] if single else out


class MaskedLMModel(EncoderTaskModel):
    """Encoder + the architecture's MLM head (`head(hidden) -> vocabulary logits`). `fill_mask(text)`."""

    def head(self, hidden: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> MaskedLMOutput:
        batch, _, hidden = self.encode(input_ids, attention_mask, token_type_ids)
        return MaskedLMOutput(batch.scatter(self.head(hidden)), batch.scatter(hidden))

    def fill_mask(self, text: str | Sequence[str], top_k: int = 5):
        """Like transformers' fill-mask pipeline: per mask token in the text, the top_k predictions as dicts
        {score, token, token_str, sequence}. One text with one mask -> list of dicts; with several masks ->
        one list per mask; a list of texts -> one such result per text."""
        tok = self.require_tokenizer()
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        if tok.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token")
        texts = self.text_list(text, "fill_mask")
        enc = tok.encode_batch(texts)
        batch, ids, hidden = self.encode(enc.input_ids, enc.attention_mask, enc.token_type_ids)
        masked = np.flatnonzero(ids == tok.mask_token_id)
        seq_of = np.searchsorted(batch.cu_seqlens, masked, side="right") - 1
        missing = sorted(set(range(len(texts))) - set(seq_of.tolist()))
        if missing:
            raise ValueError(f"no mask token ({tok.mask_token}) found in text {missing[0]}: {texts[missing[0]]!r}")
        probs = softmax(self.head(np.ascontiguousarray(hidden[masked])).astype(np.float64))
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
