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
from .gpt2 import GPT2Config, GPT2LMHeadModel, GPT2Model

__all__ = [
    "AutoModel",
    "BertConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertModel",
    "BertOutput",
    "GPT2Config",
    "GPT2LMHeadModel",
    "GPT2Model",
    "MaskedLMOutput",
    "SequenceClassifierOutput",
    "register_model",
    "registered_architectures",
]
