"""Model architectures assembled from cpuformer.layers; each registers itself with AutoModel."""
from .registry import AutoModel, register_model, registered_architectures
from .bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertOutput,
    MaskedLMOutput,
    SequenceClassifierOutput,
)

__all__ = [
    "AutoModel",
    "BertConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertModel",
    "BertOutput",
    "MaskedLMOutput",
    "SequenceClassifierOutput",
    "register_model",
    "registered_architectures",
]
