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
from .llama import LlamaConfig, LlamaForCausalLM, LlamaModel

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
    "LlamaConfig",
    "LlamaForCausalLM",
    "LlamaModel",
    "MaskedLMOutput",
    "QuestionAnsweringOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
    "register_model",
    "registered_architectures",
]

# Importing the architectures registers them with AutoModel.
from . import distilbert, electra, mpnet, roberta  # noqa: E402,F401
from .distilbert import (DistilBertForMaskedLM, DistilBertForQuestionAnswering,  # noqa: E402,F401
                         DistilBertForSequenceClassification, DistilBertForTokenClassification, DistilBertModel)
from .electra import (ElectraForMaskedLM, ElectraForPreTraining, ElectraForQuestionAnswering,  # noqa: E402,F401
                      ElectraForSequenceClassification, ElectraForTokenClassification, ElectraModel)
from .mpnet import (MPNetForMaskedLM, MPNetForQuestionAnswering, MPNetForSequenceClassification,  # noqa: E402,F401
                    MPNetForTokenClassification, MPNetModel)
from .roberta import (RobertaForMaskedLM, RobertaForQuestionAnswering,  # noqa: E402,F401
                      RobertaForSequenceClassification, RobertaForTokenClassification, RobertaModel,
                      XLMRobertaForMaskedLM, XLMRobertaForQuestionAnswering, XLMRobertaForSequenceClassification,
                      XLMRobertaForTokenClassification, XLMRobertaModel)

__all__ += [
    "DistilBertForMaskedLM", "DistilBertForQuestionAnswering", "DistilBertForSequenceClassification",
    "DistilBertForTokenClassification", "DistilBertModel", "ElectraForMaskedLM", "ElectraForPreTraining",
    "ElectraForQuestionAnswering", "ElectraForSequenceClassification", "ElectraForTokenClassification",
    "ElectraModel", "MPNetForMaskedLM", "MPNetForQuestionAnswering", "MPNetForSequenceClassification",
    "MPNetForTokenClassification", "MPNetModel", "RobertaForMaskedLM", "RobertaForQuestionAnswering", "RobertaForSequenceClassification",
    "RobertaForTokenClassification", "RobertaModel", "XLMRobertaForMaskedLM", "XLMRobertaForQuestionAnswering",
    "XLMRobertaForSequenceClassification", "XLMRobertaForTokenClassification", "XLMRobertaModel",
]
from .bart import BartConfig, BartForConditionalGeneration, BartModel, MBartForConditionalGeneration  # noqa: E402

__all__ += ["BartConfig", "BartForConditionalGeneration", "BartModel", "MBartForConditionalGeneration"]
