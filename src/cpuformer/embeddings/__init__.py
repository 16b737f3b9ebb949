"""Word embeddings: ``KeyedVectors`` and the word2vec file format."""
from .keyed_vectors import KeyedVectors
from .word2vec_format import (
    DuplicateWordWarning,
    Word2VecFormatError,
    Word2VecTruncatedError,
    read_word2vec_format,
    write_word2vec_format,
)

__all__ = [
    "KeyedVectors",
    "DuplicateWordWarning",
    "Word2VecFormatError",
    "Word2VecTruncatedError",
    "read_word2vec_format",
    "write_word2vec_format",
]
