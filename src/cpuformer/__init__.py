"""cpuformer: fast CPU inference for transformer and recurrent language models.

The C++ core (``cpuformer._core``) holds the SIMD kernels, picked at run time for the CPU; ``cpuformer.ops``
exposes them on numpy arrays, and the model classes assemble them into BERT, GPT-2, LSTM and word2vec models.
"""
from ._core import __version__
from .threads import get_num_threads, num_threads, set_num_threads
from ._config import show_config
from . import io, nn, ops
from .generation import GenerateOutput, GenerationConfig
from .embeddings import KeyedVectors
from .models import (
    AutoModel,
    BartForConditionalGeneration,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    GPT2LMHeadModel,
    GPT2Model,
)
from .sentence_encoder import SentenceEncoder
from .cross_encoder import CrossEncoder

__all__ = [
    "__version__",
    "get_num_threads",
    "set_num_threads",
    "num_threads",
    "show_config",
    "io",
    "nn",
    "ops",
    "AutoModel",
    "BartForConditionalGeneration",
    "GenerateOutput",
    "GenerationConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertModel",
    "GPT2LMHeadModel",
    "GPT2Model",
    "KeyedVectors",
    "SentenceEncoder",
    "CrossEncoder",
]

threads._warn_if_env_clamped()
threads._register_threadpoolctl()
