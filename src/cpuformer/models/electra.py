"""ELECTRA: BERT's layers and weight names under "electra.", embeddings of their own width.

- The embeddings are `embedding_size` wide; when that differs from hidden_size, `embeddings_project` (a linear)
  lifts them to the hidden size before the first layer. There is no pooler.
- ElectraForPreTraining is the discriminator: per token, dense -> hidden_act -> dense_prediction gives one
  logit, > 0 meaning "this token was replaced".
- ElectraForMaskedLM is the generator: dense (to embedding_size) -> gelu -> LayerNorm -> generator_lm_head, tied
  to the word embeddings.
- Sequence classification: classifier.dense -> gelu -> classifier.out_proj on the first token.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..io import WeightStore
from ..layers import LayerNorm, PackedBatch, TiedEmbedding, fused_activation, pack_linear, take_linear
from .bert import BertConfig, BertModel, BertPretrainedModel
from .heads import EncoderTaskModel, FirstTokenClassifier, MaskedLMModel, SequenceClassificationModel
from .question_answering import QuestionAnsweringModel
from .registry import register_model
from .token_classification import TokenClassificationModel

__all__ = ["ElectraConfig", "ElectraForMaskedLM", "ElectraForPreTraining", "ElectraForQuestionAnswering",
           "ElectraForSequenceClassification", "ElectraForTokenClassification", "ElectraModel",
           "ElectraPreTrainingOutput"]


class ElectraConfig(BertConfig):
    """BertConfig with embedding_size (ELECTRA's default when absent: the hidden size)."""

    @classmethod
    def from_dict(cls, config: dict[str, Any], family: str = "ELECTRA", **extra: Any) -> "ElectraConfig":
        base = super().from_dict(config, family, **extra)
        size = config.get("embedding_size", base.hidden_size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"config embedding_size must be a positive int, got {size!r}")
        return dataclasses.replace(base, embedding_size=size)


class ElectraPretrainedModel(BertPretrainedModel):
    config_class = ElectraConfig
    model_types = ("electra",)
    base_prefix = "electra."


@register_model("ElectraModel")
class ElectraModel(ElectraPretrainedModel, BertModel):
    """The ELECTRA encoder: `model(input_ids, attention_mask=None, token_type_ids=None)` -> BertOutput
    (pooler_output None: ELECTRA has no pooler)."""

    def __init__(self, config: BertConfig, store: WeightStore, *, pooler: bool | None = False):
        super().__init__(config, store, pooler=False)
        self.embeddings_project = (take_linear(store, "embeddings_project", config.embedding_width, config.hidden_size)
                                   if config.embedding_width != config.hidden_size else None)

    def embed(self, ids: np.ndarray, token_types: np.ndarray, batch: PackedBatch) -> np.ndarray:
        x = super().embed(ids, token_types, batch)
        return self.embeddings_project(x) if self.embeddings_project is not None else x


class ElectraTaskModel(ElectraPretrainedModel):
    encoder_attr = "electra"
    base_model_class = ElectraModel


@dataclasses.dataclass
class ElectraPreTrainingOutput:
    logits: np.ndarray  # [B, T]: > 0 where the discriminator thinks the token was replaced; 0 at padding
    last_hidden_state: np.ndarray


@register_model("ElectraForPreTraining")
class ElectraForPreTraining(ElectraTaskModel, EncoderTaskModel):
    """The discriminator: one replaced-token logit per token."""

    def __init__(self, config: BertConfig, store: WeightStore):
        self.build_encoder(config, store)
        h = config.hidden_size
        self.dense = take_linear(store, "discriminator_predictions.dense", h, h,
                                 activation=fused_activation(config.hidden_act))
        self.dense_prediction = take_linear(store, "discriminator_predictions.dense_prediction", h, 1)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> ElectraPreTrainingOutput:
        batch, _, hidden = self.encode(input_ids, attention_mask, token_type_ids)
        logits = self.dense_prediction(self.dense(hidden))[:, 0]
        return ElectraPreTrainingOutput(batch.scatter(np.ascontiguousarray(logits)), batch.scatter(hidden))


@register_model("ElectraForMaskedLM")
class ElectraForMaskedLM(ElectraTaskModel, MaskedLMModel):
    """The generator: fill_mask like BERT's."""

    def __init__(self, config: BertConfig, store: WeightStore):
        encoder = self.build_encoder(config, store)
        h, e, v = config.hidden_size, config.embedding_width, config.vocab_size
        self.dense = take_linear(store, "generator_predictions.dense", h, e, activation="gelu")
        self.layer_norm = LayerNorm.from_store(store, "generator_predictions.LayerNorm", e, config.layer_norm_eps)
        tied = not store.has("generator_lm_head.weight")
        weight = (encoder.embeddings.word_embeddings.table if tied
                  else store.take("generator_lm_head.weight", (v, e), packed=True))
        self.lm_head = pack_linear(store, weight, store.take("generator_lm_head.bias", (v,), packed=True))
        if tied:  # one copy of the matrix: the embeddings read their rows from the packed head
            encoder.embeddings.word_embeddings = TiedEmbedding(self.lm_head)

    def head(self, hidden: np.ndarray) -> np.ndarray:
        return self.lm_head(self.layer_norm(self.dense(hidden)))


@register_model("ElectraForSequenceClassification")
class ElectraForSequenceClassification(ElectraTaskModel, SequenceClassificationModel):
    def build_head(self, config: BertConfig, store: WeightStore) -> FirstTokenClassifier:
        return FirstTokenClassifier.from_store(store, "classifier.dense", "classifier.out_proj",
                                               config.hidden_size, "gelu")


@register_model("ElectraForQuestionAnswering")
class ElectraForQuestionAnswering(ElectraTaskModel, QuestionAnsweringModel):
    """ELECTRA + qa_outputs; `answer(question, context)`."""


@register_model("ElectraForTokenClassification")
class ElectraForTokenClassification(ElectraTaskModel, TokenClassificationModel):
    """ELECTRA + per-token classifier; `predict(text, aggregation=...)`."""
