"""cpuformer: fast CPU inference for transformer and recurrent language models.

The C++ core (``cpuformer._core``) holds the SIMD kernels, picked at run time for the CPU; ``cpuformer.ops``
exposes them on numpy arrays, and the model classes assemble them into BERT, GPT-2, LSTM and word2vec models.
"""
from ._core import __version__, get_num_threads, set_num_threads
from ._config import show_config
from . import io, ops
from . import nn
from .models import AutoModel, BertForMaskedLM, BertForSequenceClassification, BertModel
from .sentence_encoder import SentenceEncoder
from .models import GPT2LMHeadModel, GPT2Model

__all__ = ["__version__", "get_num_threads", "set_num_threads", "show_config", "ops"]
__all__ += ["AutoModel", "BertForMaskedLM", "BertForSequenceClassification", "BertModel", "SentenceEncoder"]
__all__ += ["GPT2LMHeadModel", "GPT2Model"]
