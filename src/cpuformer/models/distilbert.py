"""DistilBERT: BERT's post-LN layer under other weight names, no token types, no pooler.

config.json names its sizes dim / n_layers / n_heads / hidden_dim / activation; they are read into a BertConfig
(type_vocab_size 0: no token type table, so the second text of a pair is told apart only by [SEP]). Layer
norms use eps 1e-12 whatever the config says, as transformers does. Positions are 0..T-1 per row. With
`sinusoidal_pos_embds` the position table is the fixed sinusoid; checkpoints store it anyway, and when one does
not, it is computed here.
Heads: vocab_transform -> activation -> vocab_layer_norm -> vocab_projector (tied to the word embeddings) for
fill-mask; pre_classifier -> relu -> classifier on the first token for sequence classification.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..io import WeightStore
from ..layers import LayerNorm, TiedEmbedding, fused_activation, pack_linear, take_linear
from .base import config_bool, config_sizes
from .bert import BertConfig, BertEmbeddings, BertModel, BertPretrainedModel
from .heads import FirstTokenClassifier, MaskedLMModel, SequenceClassificationModel
from .question_answering import QuestionAnsweringModel
from .registry import register_model
from .token_classification import TokenClassificationModel

__all__ = ["DistilBertConfig", "DistilBertForMaskedLM", "DistilBertForQuestionAnswering",
           "DistilBertForSequenceClassification", "DistilBertForTokenClassification", "DistilBertModel",
           "sinusoidal_positions"]

_LAYER_NORM_EPS = 1e-12  # fixed in transformers' DistilBERT, not read from the config

DISTILBERT_LAYER_NAMES = {
    "query": "attention.q_lin", "key": "attention.k_lin", "value": "attention.v_lin",
    "attention_out": "attention.out_lin", "attention_norm": "sa_layer_norm",
    "intermediate": "ffn.lin1", "output": "ffn.lin2", "output_norm": "output_layer_norm",
}


def sinusoidal_positions(n_pos: int, dim: int) -> np.ndarray:
    """[n_pos, dim]: sin at even columns, cos at odd, angle pos / 10000^(2*(j//2)/dim) (transformers' formula)."""
    j = np.arange(dim)
    angle = np.arange(n_pos)[:, None] / np.power(10000.0, 2 * (j // 2) / dim)[None, :]
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


class DistilBertConfig(BertConfig):
    """DistilBERT's config.json read into BERT's fields."""

    @classmethod
    def from_dict(cls, config: dict[str, Any], family: str = "DistilBERT", **extra: Any) -> "DistilBertConfig":
        config_sizes(config, family, ["vocab_size", "dim", "n_layers", "n_heads", "hidden_dim",
                                      "max_position_embeddings"], may_be_zero=["n_layers"],
                     divisible=("dim", "n_heads"))
        as_bert = dict(config, hidden_size=config["dim"], num_hidden_layers=config["n_layers"],
                       num_attention_heads=config["n_heads"], intermediate_size=config["hidden_dim"],
                       hidden_act=config.get("activation", "gelu"), type_vocab_size=0,
                       layer_norm_eps=_LAYER_NORM_EPS)
        return super().from_dict(as_bert, family, sinusoidal_positions=config_bool(config, "sinusoidal_pos_embds", False),
                                 **extra)


class DistilBertPretrainedModel(BertPretrainedModel):
    config_class = DistilBertConfig
    model_types = ("distilbert",)
    base_prefix = "distilbert."


@register_model("DistilBertModel")
class DistilBertModel(DistilBertPretrainedModel, BertModel):
    """The DistilBERT encoder: `model(input_ids, attention_mask=None)` -> BertOutput (pooler_output None).
    token_type_ids are accepted and ignored (DistilBERT has none)."""

    layer_prefix = "transformer.layer"
    layer_names = DISTILBERT_LAYER_NAMES

    def __init__(self, config: BertConfig, store: WeightStore, *, pooler: bool | None = False):
        super().__init__(config, store, pooler=False)

    def build_embeddings(self, config: BertConfig, store: WeightStore) -> BertEmbeddings:
        # only a sinusoidal model may leave the table out; otherwise BertEmbeddings names the missing weight
        table = (sinusoidal_positions(config.max_position_embeddings, config.hidden_size)
                 if config.sinusoidal_positions and not store.has("embeddings.position_embeddings.weight") else None)
        return BertEmbeddings(store, config, position_table=table)


class DistilBertTaskModel(DistilBertPretrainedModel):
    encoder_attr = "distilbert"
    base_model_class = DistilBertModel


@register_model("DistilBertForMaskedLM")
class DistilBertForMaskedLM(DistilBertTaskModel, MaskedLMModel):
    def __init__(self, config: BertConfig, store: WeightStore):
        encoder = self.build_encoder(config, store)
        h, v = config.hidden_size, config.vocab_size
        self.vocab_transform = take_linear(store, "vocab_transform", h, h,
                                           activation=fused_activation(config.hidden_act))
        self.vocab_layer_norm = LayerNorm.from_store(store, "vocab_layer_norm", h, _LAYER_NORM_EPS)
        tied = not store.has("vocab_projector.weight")
        weight = (encoder.embeddings.word_embeddings.table if tied
                  else store.take("vocab_projector.weight", (v, h), packed=True))
        self.vocab_projector = pack_linear(store, weight, store.take("vocab_projector.bias", (v,), packed=True))
        if tied:  # one copy of the matrix: the embeddings read their rows from the packed projector
            encoder.embeddings.word_embeddings = TiedEmbedding(self.vocab_projector)

    def head(self, hidden: np.ndarray) -> np.ndarray:
        return self.vocab_projector(self.vocab_layer_norm(self.vocab_transform(hidden)))


@register_model("DistilBertForSequenceClassification")
class DistilBertForSequenceClassification(DistilBertTaskModel, SequenceClassificationModel):
    def build_head(self, config: BertConfig, store: WeightStore) -> FirstTokenClassifier:
        return FirstTokenClassifier.from_store(store, "pre_classifier", "classifier", config.hidden_size, "relu")


@register_model("DistilBertForQuestionAnswering")
class DistilBertForQuestionAnswering(DistilBertTaskModel, QuestionAnsweringModel):
    """DistilBERT + qa_outputs; `answer(question, context)`."""


@register_model("DistilBertForTokenClassification")
class DistilBertForTokenClassification(DistilBertTaskModel, TokenClassificationModel):
    """DistilBERT + per-token classifier; `predict(text, aggregation=...)`."""
