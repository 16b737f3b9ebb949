"""RoBERTa and XLM-RoBERTa: BERT's layers and weight names under "roberta.", with three differences.

- Positions count the non-padding tokens of each row from pad_token_id + 1 (transformers'
  create_position_ids_from_input_ids), so the usable length is max_position_embeddings - pad_token_id - 1 and
  a padding id inside a row gets position pad_token_id.
- One token type (type_vocab_size 1): tokenizers give every token type 0, pairs included.
- Its own heads: lm_head (dense, gelu, layer_norm, decoder tied to the word embeddings, bias) for fill-mask, and
  classifier.dense (tanh) + classifier.out_proj on the <s> token for sequence classification.
XLM-RoBERTa is the same network (model_type "xlm-roberta"); only its tokenizer differs.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..io import WeightStore
from ..layers import LayerNorm, PackedBatch, TiedEmbedding, pack_linear, take_linear
from .bert import BertConfig, BertEmbeddings, BertModel, BertPretrainedModel
from .heads import FirstTokenClassifier, MaskedLMModel, SequenceClassificationModel
from .question_answering import QuestionAnsweringModel
from .registry import register_model
from .token_classification import TokenClassificationModel

__all__ = [
    "RobertaConfig", "RobertaForMaskedLM", "RobertaForQuestionAnswering", "RobertaForSequenceClassification",
    "RobertaForTokenClassification", "RobertaModel", "XLMRobertaForMaskedLM", "XLMRobertaForQuestionAnswering",
    "XLMRobertaForSequenceClassification", "XLMRobertaForTokenClassification", "XLMRobertaModel",
]


class RobertaConfig(BertConfig):
    """BertConfig whose positions start at pad_token_id + 1."""

    @classmethod
    def from_dict(cls, config: dict[str, Any], family: str = "RoBERTa", **extra: Any) -> "RobertaConfig":
        base = super().from_dict(config, family, **extra)
        return dataclasses.replace(base, position_offset=base.pad_token_id + 1)


class RobertaPretrainedModel(BertPretrainedModel):
    config_class = RobertaConfig
    model_types = ("roberta",)
    base_prefix = "roberta."


@register_model("RobertaModel")
class RobertaModel(RobertaPretrainedModel, BertModel):
    """The RoBERTa encoder: `model(input_ids, attention_mask=None)` -> BertOutput (pooler when saved)."""

    def positions(self, ids: np.ndarray, batch: PackedBatch) -> np.ndarray:
        pad = self.config.pad_token_id
        real = ids != pad
        count = np.cumsum(real)
        before = np.concatenate([[0], count])[batch.cu_seqlens[:-1]]  # real tokens before each sequence
        return np.where(real, count - np.repeat(before, batch.lengths) + pad, pad)


class RobertaTaskModel(RobertaPretrainedModel):
    encoder_attr = "roberta"
    base_model_class = RobertaModel


class RobertaLMHead:
    """lm_head: dense -> gelu -> layer_norm -> decoder (tied to the word embeddings unless saved) + bias.
    When tied, the embeddings then read their rows from the packed decoder (one copy of the matrix)."""

    def __init__(self, store: WeightStore, config: BertConfig, embeddings: BertEmbeddings):
        h, v = config.hidden_size, config.vocab_size
        self.dense = take_linear(store, "lm_head.dense", h, h, activation="gelu")
        self.layer_norm = LayerNorm.from_store(store, "lm_head.layer_norm", h, config.layer_norm_eps)
        tied = not store.has("lm_head.decoder.weight")
        weight = (embeddings.word_embeddings.table if tied
                  else store.take("lm_head.decoder.weight", (v, h), packed=True))
        names = [n for n in ("lm_head.bias", "lm_head.decoder.bias") if store.has(n)]
        bias = [store.take(n, (v,), packed=True) for n in names or ["lm_head.bias"]][-1]  # both saved: the same
        self.decoder = pack_linear(store, weight, bias)
        if tied:
            embeddings.word_embeddings = TiedEmbedding(self.decoder)

    def __call__(self, hidden: np.ndarray) -> np.ndarray:
        return self.decoder(self.layer_norm(self.dense(hidden)))


@register_model("RobertaForMaskedLM")
class RobertaForMaskedLM(RobertaTaskModel, MaskedLMModel):
    """RoBERTa + lm_head; `fill_mask("The capital of France is <mask>.")`."""

    def __init__(self, config: BertConfig, store: WeightStore):
        encoder = self.build_encoder(config, store)
        self.lm_head = RobertaLMHead(store, config, encoder.embeddings)

    def head(self, hidden: np.ndarray) -> np.ndarray:
        return self.lm_head(hidden)


@register_model("RobertaForSequenceClassification")
class RobertaForSequenceClassification(RobertaTaskModel, SequenceClassificationModel):
    """RoBERTa + classifier (dense, tanh, out_proj on <s>): cross-encoders, NLI and sentiment checkpoints."""

    def build_head(self, config: BertConfig, store: WeightStore) -> FirstTokenClassifier:
        return FirstTokenClassifier.from_store(store, "classifier.dense", "classifier.out_proj",
                                               config.hidden_size, "tanh")


@register_model("RobertaForQuestionAnswering")
class RobertaForQuestionAnswering(RobertaTaskModel, QuestionAnsweringModel):
    """RoBERTa + qa_outputs; `answer(question, context)`."""


@register_model("RobertaForTokenClassification")
class RobertaForTokenClassification(RobertaTaskModel, TokenClassificationModel):
    """RoBERTa + per-token classifier; `predict(text, aggregation=...)`."""


# --- XLM-RoBERTa: the same network under its own names ---------------------------------------------------------
@register_model("XLMRobertaModel")
class XLMRobertaModel(RobertaModel):
    model_types = ("xlm-roberta",)


class XLMRobertaTaskModel(RobertaTaskModel):
    model_types = ("xlm-roberta",)
    base_model_class = XLMRobertaModel


@register_model("XLMRobertaForMaskedLM")
class XLMRobertaForMaskedLM(XLMRobertaTaskModel, RobertaForMaskedLM):
    pass


@register_model("XLMRobertaForSequenceClassification")
class XLMRobertaForSequenceClassification(XLMRobertaTaskModel, RobertaForSequenceClassification):
    pass


@register_model("XLMRobertaForQuestionAnswering")
class XLMRobertaForQuestionAnswering(XLMRobertaTaskModel, RobertaForQuestionAnswering):
    pass


@register_model("XLMRobertaForTokenClassification")
class XLMRobertaForTokenClassification(XLMRobertaTaskModel, RobertaForTokenClassification):
    pass
