"""FastTextKeyedVectors: word vectors plus character n-gram buckets, so every word has a vector.

As fastText (and gensim 4) compute them:
- a word's n-grams are those of b"<" + utf8(word) + b">" with minn..maxn characters (UTF-8 sequences are never
  split; the lone "<" and ">" are not n-grams), in order of start character, then length;
- an n-gram's bucket is FNV-1a over its bytes, each byte sign-extended as a C++ (signed) char is, mod bucket;
- an in-vocabulary word's vector is (its word row + its n-gram rows) / (1 + number of n-grams), summed in
  float32 in that order, computed once at load; an out-of-vocabulary word's is the mean of its n-gram rows
  (zero when it has none).
Only the composed word vectors and the n-gram rows are kept (gensim also keeps the raw word rows).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import native_format
from .fasttext_format import FastTextFile, FastTextFormatError, read_facebook_bin
from .keyed_vectors import Key, KeyedVectors
from .word2vec_format import PathOrFile

__all__ = ["FastTextKeyedVectors", "FastTextModel", "ft_hash_bytes", "ngrams_bytes", "ngram_buckets"]

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619
_WORDS_PER_BATCH = 8192  # vocabulary words whose n-grams are hashed and summed at once


def _display_name(path: PathOrFile) -> str:
    return str(getattr(path, "name", "<stream>")) if hasattr(path, "read") else os.fspath(path)  # type: ignore[arg-type]


def ft_hash_bytes(data: bytes) -> int:
    """fastText's Dictionary::hash: 32-bit FNV-1a where each byte is xor-ed in as int8 widened to uint32."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ (b | 0xFFFFFF00 if b >= 0x80 else b)) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def ngrams_bytes(word: str, minn: int, maxn: int) -> List[bytes]:
    """The character n-grams of "<word>" as UTF-8 bytes, in fastText's order (Dictionary::computeSubwords)."""
    data = ("<" + word + ">").encode("utf8")
    starts = [i for i, b in enumerate(data) if b & 0xC0 != 0x80] + [len(data)]
    chars = len(starts) - 1
    out = []
    for c in range(chars):
        for n in range(1, min(maxn, chars - c) + 1):
            if n >= minn and not (n == 1 and (c == 0 or c + n == chars)):
                out.append(data[starts[c]:starts[c + n]])
    return out


def ngram_buckets(word: str, minn: int, maxn: int, bucket: int) -> List[int]:
    """Bucket rows of the word's n-grams (empty when bucket is 0)."""
    if bucket == 0:
        return []
    return [ft_hash_bytes(g) % bucket for g in ngrams_bytes(word, minn, maxn)]


def _batch_buckets(words: Sequence[str], minn: int, maxn: int, bucket: int) -> Tuple[np.ndarray, np.ndarray]:
    """ngram_buckets for many words at once, in numpy: (offsets (len(words) + 1,), buckets) in CSR form."""
    encoded = [("<" + w + ">").encode("utf8") for w in words]
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    starts = np.flatnonzero((data & 0xC0) != 0x80)                 # byte offset of every character
    char_ends = np.append(starts, data.size)                        # + the end of the last word
    word_of_byte_start = np.cumsum(lengths) - lengths
    first_char = np.searchsorted(starts, word_of_byte_start)        # index of each word's first character
    n_chars = np.diff(np.append(first_char, starts.size))
    word_of_char = np.repeat(np.arange(len(words)), n_chars)
    maxn = min(maxn, int(n_chars.max(initial=0)))  # no n-gram is longer than its word (and maxn may be absurd)
    local = np.arange(starts.size) - first_char[word_of_char]
    # every (character, length) pair, character-major as fastText emits them
    g = np.repeat(np.arange(starts.size), maxn)
    n = np.tile(np.arange(1, maxn + 1), starts.size)
    w = word_of_char[g]
    c = local[g]
    chars = n_chars[w]
    keep = (c + n <= chars) & (n >= minn) & ~((n == 1) & ((c == 0) | (c + n == chars)))
    g, n, w = g[keep], n[keep], w[keep]
    span_start = starts[g]
    span_len = char_ends[g + n] - span_start
    h = np.full(g.size, _FNV_OFFSET, dtype=np.uint32)
    for t in range(int(span_len.max(initial=0))):
        live = np.flatnonzero(span_len > t)
        byte = data[span_start[live] + t].view(np.int8).astype(np.int32).astype(np.uint32)
        h[live] = (h[live] ^ byte) * np.uint32(_FNV_PRIME)
    buckets = (h % np.uint32(bucket)).astype(np.int64)
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(np.bincount(w, minlength=len(words)), out=offsets[1:])
    return offsets, buckets


def _compose_word_vectors(word_rows: np.ndarray, ngrams: np.ndarray, words: Sequence[str], minn: int, maxn: int) -> np.ndarray:
    """(word row + n-gram rows) / (1 + n-grams) per word, summed in float32 in fastText's order: the result
    equals gensim's adjust_vectors bit for bit. Works in place on word_rows (which must be owned)."""
    bucket = ngrams.shape[0]
    if bucket == 0 or maxn == 0:
        return word_rows
    for a in range(0, len(words), _WORDS_PER_BATCH):
        batch = words[a:a + _WORDS_PER_BATCH]
        offsets, buckets = _batch_buckets(batch, minn, maxn, bucket)
        counts = np.diff(offsets)
        order = np.argsort(-counts, kind="stable")  # most n-grams first: the words in slot s are a prefix
        work = word_rows[a:a + len(batch)][order]
        starts = offsets[order]
        live = np.searchsorted(-counts[order], -np.arange(int(counts.max(initial=0))), side="left")
        for slot, m in enumerate(live.tolist()):  # m words have more than `slot` n-grams
            work[:m] += ngrams[buckets[starts[:m] + slot]]
        work /= (counts[order] + 1).astype(np.float32)[:, None]
        word_rows[a:a + len(batch)][order] = work
    return word_rows


class FastTextKeyedVectors(KeyedVectors):
    """KeyedVectors whose out-of-vocabulary words get vectors from character n-grams (gensim 4 semantics).

    ``vectors`` holds the composed in-vocabulary vectors (what fastText's getWordVector returns) and
    ``vectors_ngrams`` the (bucket, dim) n-gram rows. Every str is ``in`` these vectors when bucket > 0, as in
    gensim; use ``key_to_index`` (or ``has_index_for``) to ask whether a word is in the vocabulary.
    Nearest-neighbour search (most_similar and the rest) runs over the vocabulary, with OOV query words allowed.
    """

    min_n: int
    max_n: int
    vectors_ngrams: np.ndarray

    def __init__(
        self, vectors: np.ndarray, index_to_key: Sequence[str], vectors_ngrams: np.ndarray, min_n: int = 3,
        max_n: int = 6,
    ):
        """vectors: the (n, dim) composed word vectors (what fastText's getWordVector gives for each key);
        vectors_ngrams: the (bucket, dim) n-gram rows; min_n / max_n: n-gram lengths in characters."""
        super().__init__(vectors, index_to_key)
        ngrams = np.ascontiguousarray(vectors_ngrams, dtype=np.float32)
        checked = FastTextKeyedVectors._from_parts(
            self._vectors, ngrams, self.index_to_key, self.key_to_index, min_n, max_n, source="FastTextKeyedVectors"
        )
        self.vectors_ngrams, self.min_n, self.max_n = checked.vectors_ngrams, checked.min_n, checked.max_n

    @classmethod
    def _from_parts(
        cls, vectors: np.ndarray, ngrams: np.ndarray, index_to_key: List[str], key_to_index: Dict[str, int],
        min_n: Any, max_n: Any, source: str = "",
    ) -> "FastTextKeyedVectors":
        for name, value in (("min_n", min_n), ("max_n", max_n)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{source}: {name} must be an integer >= 0, got {value!r}")
        if ngrams.ndim != 2 or ngrams.shape[1] != vectors.shape[1]:
            raise ValueError(f"{source}: vectors_ngrams must have shape (bucket, {vectors.shape[1]}), got {ngrams.shape}")
        self = cls.__new__(cls)
        KeyedVectors._init(self, vectors, index_to_key, key_to_index)
        self.vectors_ngrams = ngrams
        self.min_n, self.max_n = min_n, max_n
        return self

    @property
    def bucket(self) -> int:
        return self.vectors_ngrams.shape[0]

    # ---- loading -------------------------------------------------------------------------------------------

    @classmethod
    def _from_file(cls, ft: FastTextFile, name: str) -> "FastTextKeyedVectors":
        key_to_index: Dict[str, int] = {}
        for i, word in enumerate(ft.words):
            if key_to_index.setdefault(word, i) != i:
                raise FastTextFormatError(f"{name}: the vocabulary holds {word!r} twice (words {key_to_index[word] + 1} "
                                 f"and {i + 1})")
        n = len(ft.words)
        matrix = ft.input_matrix  # owned by us: the word rows are composed in place, nothing is copied
        vectors = _compose_word_vectors(matrix[:n], matrix[n:], ft.words, ft.minn, ft.maxn)
        ngrams = matrix[n:]
        kv = cls._from_parts(vectors, ngrams, ft.words, key_to_index, ft.minn, ft.maxn, source=name)
        kv._counts = list(ft.counts)
        return kv

    @classmethod
    def load_facebook_vectors(cls, path: PathOrFile, encoding: str = "utf8") -> "FastTextKeyedVectors":
        """Word vectors of a Facebook fastText .bin model (cbow or skipgram; .gz/.bz2/.xz decompressed), as
        gensim's load_facebook_vectors gives them. Malformed files raise FastTextFormatError (a ValueError)."""
        ft = read_facebook_bin(path, encoding=encoding, full_model=False)
        return cls._from_file(ft, _display_name(path))

    @classmethod
    def load_facebook_model(cls, path: PathOrFile, encoding: str = "utf8") -> "FastTextModel":
        """The whole model: ``.wv`` (these vectors), the training parameters and the output matrix. The file
        must end right after the output matrix."""
        ft = read_facebook_bin(path, encoding=encoding, full_model=True)
        return FastTextModel(cls._from_file(ft, _display_name(path)), ft)

    # ---- lookups -------------------------------------------------------------------------------------------

    def __contains__(self, key: Key) -> bool:
        if self.bucket > 0 and isinstance(key, str):
            return True
        return self.has_index_for(key)

    def ngram_buckets(self, word: str) -> List[int]:
        """Rows of vectors_ngrams that make up the word's n-gram part."""
        return ngram_buckets(word, self.min_n, self.max_n, self.bucket)

    def _oov_vector(self, word: str, norm: bool) -> np.ndarray:
        rows = self.ngram_buckets(word)
        if not rows:
            return np.zeros(self.vector_size, dtype=np.float32)  # what fastText and gensim return
        total = np.cumsum(self.vectors_ngrams[rows], axis=0, dtype=np.float32)[-1]  # sequential, as gensim
        if norm:
            return total / np.linalg.norm(total)
        return total / np.float32(len(rows))

    def get_vector(self, key: Key, norm: bool = False) -> np.ndarray:
        """The word's vector: its composed row if in the vocabulary, else the mean of its n-gram rows (KeyError
        if bucket is 0). norm=True gives it at unit length."""
        if self.has_index_for(key):
            return super().get_vector(key, norm)
        if not isinstance(key, str):
            raise KeyError(f"Key {key!r} not present")
        if self.bucket == 0:
            raise KeyError(f"Key {key!r} not present, and these vectors have no n-grams to build one")
        vec = self._oov_vector(key, norm)
        vec.setflags(write=False)
        return vec

    def _key_vector(self, key: Any, norm: bool) -> Optional[np.ndarray]:
        if self.has_index_for(key) or (isinstance(key, str) and self.bucket > 0):
            return self.get_vector(key, norm)
        return None

    def get_sentence_vector(self, sentence: Sequence[Key]) -> np.ndarray:
        """Mean of the words' unit vectors (gensim's get_sentence_vector = get_mean_vector)."""
        return self.get_mean_vector(sentence)

    # ---- files ---------------------------------------------------------------------------------------------

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """cpuformer's own format (see KeyedVectors.save), plus ``path.vectors_ngrams.npy``."""
        native_format.save(
            path, self, {"vectors": self._vectors, "vectors_ngrams": self.vectors_ngrams},
            {"min_n": self.min_n, "max_n": self.max_n, "bucket": self.bucket},
        )

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], mmap: Optional[str] = None) -> "FastTextKeyedVectors":
        return native_format.load(path, mmap, expected=cls)  # type: ignore[return-value]


class FastTextModel:
    """A loaded fastText model: ``wv`` plus what the file says about training, with gensim's FastText names.
    cpuformer does not train; the output matrix is kept as ``syn1neg`` (negative sampling) or ``syn1``
    (hierarchical softmax) for inspection."""

    def __init__(self, wv: FastTextKeyedVectors, ft: FastTextFile):
        self.wv = wv
        self.vector_size = ft.dim
        self.window = ft.ws
        self.epochs = ft.epoch
        self.negative = ft.neg
        self.hs = int(ft.loss == 1)
        self.sg = int(ft.model == 2)
        self.bucket = ft.bucket
        self.min_count = ft.min_count
        self.sample = ft.t
        self.min_n, self.max_n = ft.minn, ft.maxn
        self.word_ngrams = ft.word_ngrams
        self.corpus_total_words = ft.ntokens
        self.file_version = ft.version
        output = ft.output_matrix
        self.syn1neg = None if self.hs else output
        self.syn1 = output if self.hs else None

    def __repr__(self) -> str:
        return (f"FastTextModel<vector_size={self.vector_size}, {len(self.wv)} words, bucket={self.bucket}, "
                f"n-grams {self.min_n}..{self.max_n}, {'skipgram' if self.sg else 'cbow'}>")
