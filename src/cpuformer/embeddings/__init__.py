"""Word embeddings: ``KeyedVectors`` (word2vec files), ``FastTextKeyedVectors`` (fastText .bin models)."""
from .evaluation import CorrelationResult
from .fasttext_format import FastTextFormatError
from .fasttext_vectors import FastTextKeyedVectors, FastTextModel
from .keyed_vectors import KeyedVectors
from .word2vec_format import (
    DuplicateWordWarning,
    Word2VecFormatError,
    Word2VecTruncatedError,
    read_word2vec_format,
    write_word2vec_format,
)

load_facebook_vectors = FastTextKeyedVectors.load_facebook_vectors
load_facebook_model = FastTextKeyedVectors.load_facebook_model

__all__ = [
    "KeyedVectors",
    "FastTextKeyedVectors",
    "FastTextModel",
    "FastTextFormatError",
    "CorrelationResult",
    "load_facebook_vectors",
    "load_facebook_model",
    "DuplicateWordWarning",
    "Word2VecFormatError",
    "Word2VecTruncatedError",
    "read_word2vec_format",
    "write_word2vec_format",
]
