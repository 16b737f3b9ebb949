"""Model architectures assembled from cpuformer.layers; each registers itself with AutoModel."""
from .registry import AutoModel, register_model, registered_architectures
from .heads import MaskedLMOutput, SequenceClassifierOutput
from .question_answering import QuestionAnsweringOutput
from .token_classification import TokenClassifierOutput
from .bert import (
    BertConfig,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertOutput,
)
from .gpt2 import GPT2Config, GPT2LMHeadModel, GPT2Model

__all__ = [
    "AutoModel",
    "BertConfig",
    "BertForMaskedLM",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertOutput",
    "GPT2Config",
    "GPT2LMHeadModel",
    "GPT2Model",
    "MaskedLMOutput",
    "QuestionAnsweringOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
    "register_model",
    "registered_architectures",
]
