"""MPNet (all-mpnet-base-v2's architecture): a post-LN encoder like BERT with a relative position bias.

- Weights under "mpnet.": embeddings (word, position, LayerNorm; no token types), encoder.layer.N with
  attention.attn.{q,k,v,o} and attention.LayerNorm, then BERT's intermediate / output, pooler.dense.
- Positions as RoBERTa's, from padding id 1 (transformers hard-codes it): the first token is position 2.
- Every layer's attention scores gain a per-head bias by the key's position relative to the query's:
  encoder.relative_attention_bias [buckets, heads] looked up by T5-style buckets (16 per direction: exact up
  to 8, then log-spaced up to distance 128). transformers always buckets with 32 whatever the config says; so do
  we. The bias for one forward is a [heads, 2L - 1] table (L = the longest sequence) that the fused attention op
  indexes per query and key, never a [B, heads, T, T] tensor.
- Heads: lm_head and classifier (dense, tanh, out_proj) as RoBERTa's; qa_outputs; per-token classifier.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..io import WeightStore
from ..layers import PackedBatch
from .bert import BertConfig, BertPretrainedModel
from .heads import FirstTokenClassifier, MaskedLMModel, SequenceClassificationModel
from .question_answering import QuestionAnsweringModel
from .registry import register_model
from .roberta import RobertaLMHead, RobertaModel
from .token_classification import TokenClassificationModel

__all__ = ["MPNetConfig", "MPNetForMaskedLM", "MPNetForQuestionAnswering", "MPNetForSequenceClassification",
           "MPNetForTokenClassification", "MPNetModel", "relative_position_bucket"]

MPNET_LAYER_NAMES = {
    "query": "attention.attn.q", "key": "attention.attn.k", "value": "attention.attn.v",
    "attention_out": "attention.attn.o", "attention_norm": "attention.LayerNorm",
    "intermediate": "intermediate.dense", "output": "output.dense", "output_norm": "output.LayerNorm",
}
_PADDING_IDX = 1  # MPNetEmbeddings.padding_idx, fixed in transformers
_BUCKETS, _MAX_DISTANCE = 32, 128  # what MPNetEncoder.compute_position_bias uses


def relative_position_bucket(relative_position: np.ndarray, num_buckets: int = _BUCKETS,
                             max_distance: int = _MAX_DISTANCE) -> np.ndarray:
    """Bucket of each (key - query) offset, as transformers' MPNet computes it (float32 logs, so the buckets
    at log-scale boundaries come out as in torch)."""
    n = -np.asarray(relative_position, np.int64)
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    ratio = np.maximum(n, 1).astype(np.float32) / np.float32(max_exact)  # n < max_exact is replaced below
    large = max_exact + (np.log(ratio) / np.float32(math.log(max_distance / max_exact))
                         * np.float32(half - max_exact)).astype(np.int64)
    return ret + np.where(n < max_exact, n, np.minimum(large, half - 1))


class MPNetConfig(BertConfig):
    """MPNet's config.json read into BERT's fields (no token types; positions offset by padding id 1)."""

    @classmethod
    def from_dict(cls, config: dict[str, Any], family: str = "MPNet", **extra: Any) -> "MPNetConfig":
        base = super().from_dict(dict(config, type_vocab_size=0, pad_token_id=_PADDING_IDX), family, **extra)
        return dataclasses.replace(base, position_offset=_PADDING_IDX + 1)


class MPNetPretrainedModel(BertPretrainedModel):
    config_class = MPNetConfig
    model_types = ("mpnet",)
    base_prefix = "mpnet."


@register_model("MPNetModel")
class MPNetModel(MPNetPretrainedModel, RobertaModel):
    """The MPNet encoder: `model(input_ids, attention_mask=None)` -> BertOutput. token_type_ids are ignored."""

    layer_names = MPNET_LAYER_NAMES

    def __init__(self, config: BertConfig, store: WeightStore, *, pooler: bool | None = None):
        super().__init__(config, store, pooler=pooler)
        heads = config.num_attention_heads
        self.relative_attention_bias = store.take("encoder.relative_attention_bias.weight", (None, heads))
        if self.relative_attention_bias.shape[0] < _BUCKETS:
            raise ValueError(f"encoder.relative_attention_bias has {self.relative_attention_bias.shape[0]} buckets; "
                             f"MPNet looks up {_BUCKETS}")

    def relative_bias(self, batch: PackedBatch) -> np.ndarray:
        longest = int(batch.lengths.max(initial=1))
        offsets = np.arange(-(longest - 1), longest)  # key - query
        return np.ascontiguousarray(self.relative_attention_bias[relative_position_bucket(offsets)].T)


class MPNetTaskModel(MPNetPretrainedModel):
    encoder_attr = "mpnet"
    base_model_class = MPNetModel


@register_model("MPNetForMaskedLM")
class MPNetForMaskedLM(MPNetTaskModel, MaskedLMModel):
    def __init__(self, config: BertConfig, store: WeightStore):
        encoder = self.build_encoder(config, store)
        self.lm_head = RobertaLMHead(store, config, encoder.embeddings)

    def head(self, hidden: np.ndarray) -> np.ndarray:
        return self.lm_head(hidden)


@register_model("MPNetForSequenceClassification")
class MPNetForSequenceClassification(MPNetTaskModel, SequenceClassificationModel):
    def build_head(self, config: BertConfig, store: WeightStore) -> FirstTokenClassifier:
        return FirstTokenClassifier.from_store(store, "classifier.dense", "classifier.out_proj",
                                               config.hidden_size, "tanh")


@register_model("MPNetForQuestionAnswering")
class MPNetForQuestionAnswering(MPNetTaskModel, QuestionAnsweringModel):
    """MPNet + qa_outputs; `answer(question, context)`."""


@register_model("MPNetForTokenClassification")
class MPNetForTokenClassification(MPNetTaskModel, TokenClassificationModel):
    """MPNet + per-token classifier; `predict(text, aggregation=...)`."""
