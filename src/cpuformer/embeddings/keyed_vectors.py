"""KeyedVectors: word -> vector lookup and cosine nearest neighbours, with gensim 4.x semantics.

vectors is (n, dim) float32; the unit-norm copy is computed once and cached. Every nearest-neighbour query,
single or batched, goes through ``_top_k_scores``: the unit rows are packed once into a PackedLinear and the
C++ op scores and selects in one pass (SIMD threshold scan + heap), so no (queries, vocabulary) score matrix
is ever stored.
"""
from __future__ import annotations

from numbers import Integral
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import ops
from .word2vec_format import PathOrFile, read_word2vec_format, write_word2vec_format

__all__ = ["KeyedVectors"]

Key = Union[str, int]
_KEY_TYPES = (str, int, np.integer)
_NORM_ROWS = 1 << 16           # rows per chunk when computing norms (bounds the squared temporary)


def _top_k_scores(
    packed: Optional[ops.PackedLinear], queries_normed: np.ndarray, k: int, exclude: Optional[np.ndarray]
) -> Tuple[np.ndarray, np.ndarray]:
    """Cosine scores of every query against every row of the packed unit-norm matrix, keeping the k best.

    packed is the (n, d) unit-row matrix as a PackedLinear (None when n == 0); queries_normed is (q, d)
    float32; k >= 1. exclude is None or (q, e) int64: row indices never to return for that query (-1 or >= n:
    no entry). Returns (indices (q, min(k, n)) int64, scores (q, min(k, n)) float32), best first, equal scores
    in ascending index order; a query with fewer than k eligible rows is padded with index -1, score -inf.
    Scoring and selection are one fused C++ op (SIMD threshold scan + heap); the (q, n) scores never exist.
    """
    q = queries_normed.shape[0]
    if packed is None:
        return np.empty((q, 0), np.int64), np.empty((q, 0), np.float32)
    return packed.top_k(np.ascontiguousarray(queries_normed, dtype=np.float32), k, exclude)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (np.linalg.norm, as gensim computes it); zero rows stay zero."""
    out = np.empty(matrix.shape, dtype=np.float32)
    for a in range(0, matrix.shape[0], _NORM_ROWS):
        block = matrix[a:a + _NORM_ROWS]
        norms = np.linalg.norm(block, axis=1)
        norms[norms == 0] = 1
        np.divide(block, norms[:, None], out=out[a:a + _NORM_ROWS])
    return out


def _as_list(value: Any) -> list:
    """gensim's rule: a single key or 1-D vector becomes a one-item list, a 2-D array a list of rows."""
    if value is None:
        return []
    if isinstance(value, _KEY_TYPES) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return list(value)
    return list(value)


class KeyedVectors:
    """Word vectors with gensim 4 ``KeyedVectors`` semantics, built from a float32 matrix and its keys.

    ``vectors`` is converted to C-contiguous float32 (no copy when it already is one, so the caller's array
    is shared). Keys must be unique strings. Integer keys are read as row positions, as in gensim.
    """

    def __init__(self, vectors: np.ndarray, index_to_key: Sequence[str]):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (n_keys, vector_size), got shape {vectors.shape}")
        index_to_key = list(index_to_key)
        if len(index_to_key) != vectors.shape[0]:
            raise ValueError(
                f"index_to_key has {len(index_to_key)} keys but vectors has {vectors.shape[0]} rows"
            )
        key_to_index: Dict[str, int] = {}
        for i, key in enumerate(index_to_key):
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, got {key!r} ({type(key).__name__}) at position {i}")
            j = key_to_index.setdefault(key, i)
            if j != i:
                raise ValueError(f"duplicate key {key!r} at positions {j} and {i}")
        self._init(np.ascontiguousarray(vectors, dtype=np.float32), index_to_key, key_to_index)

    def _init(self, vectors: np.ndarray, index_to_key: List[str], key_to_index: Dict[str, int]) -> None:
        self._vectors = vectors
        self.index_to_key = index_to_key
        self.key_to_index = key_to_index
        self._normed: Optional[np.ndarray] = None
        self._packed: Dict[int, ops.PackedLinear] = {}  # unit rows packed for top-k, by searched row count

    @classmethod
    def _from_checked(
        cls, vectors: np.ndarray, index_to_key: List[str], key_to_index: Dict[str, int]
    ) -> "KeyedVectors":
        self = cls.__new__(cls)
        self._init(vectors, index_to_key, key_to_index)
        return self

    # ---- storage -------------------------------------------------------------------------------------------

    @property
    def vectors(self) -> np.ndarray:
        """(n, vector_size) float32. Assigning a matrix resets the cached unit-norm copy; editing this one in
        place does not, so after in-place edits reassign it (``kv.vectors = kv.vectors``)."""
        return self._vectors

    @vectors.setter
    def vectors(self, value: np.ndarray) -> None:
        value = np.ascontiguousarray(value, dtype=np.float32)
        if value.ndim != 2 or value.shape[0] != len(self.index_to_key):
            raise ValueError(f"vectors must have shape ({len(self.index_to_key)}, dim), got {value.shape}")
        self._vectors = value
        self._normed = None
        self._packed = {}

    @property
    def vector_size(self) -> int:
        return self._vectors.shape[1]

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}<vector_size={self.vector_size}, {len(self)} keys>"

    def get_index(self, key: Key) -> int:
        """Row of ``key``; an int in range(len(self)) that is not a key is taken as a row, as in gensim."""
        index = self.key_to_index.get(key, -1) if isinstance(key, str) else -1
        if index >= 0:
            return index
        is_int = isinstance(key, (int, np.integer)) and not isinstance(key, bool)
        if is_int and 0 <= key < len(self.index_to_key):
            return int(key)
        raise KeyError(f"Key {key!r} not present")

    def has_index_for(self, key: Key) -> bool:
        try:
            self.get_index(key)
        except (KeyError, TypeError):
            return False
        return True

    def __contains__(self, key: Key) -> bool:
        return self.has_index_for(key)

    def get_vector(self, key: Key, norm: bool = False) -> np.ndarray:
        """Read-only view of the key's row (unit length if norm; a zero vector stays zero)."""
        index = self.get_index(key)
        row = (self.get_normed_vectors() if norm else self._vectors)[index]
        row.setflags(write=False)
        return row

    def __getitem__(self, key_or_keys: Union[Key, Iterable[Key]]) -> np.ndarray:
        """One key: its vector (1-D, read-only view). A list of keys: a new (len, vector_size) array."""
        if isinstance(key_or_keys, _KEY_TYPES):
            return self.get_vector(key_or_keys)
        return self._vectors[[self.get_index(k) for k in key_or_keys]].reshape(-1, self.vector_size)

    def get_normed_vectors(self) -> np.ndarray:
        """(n, vector_size) unit-length rows, computed once and cached (read-only); zero rows stay zero."""
        if self._normed is None:
            normed = _unit_rows(self._vectors)
            normed.setflags(write=False)
            self._normed = normed
        return self._normed

    # ---- similarity ----------------------------------------------------------------------------------------

    def _weighted_mean(
        self, items: list, weights: List[float], pre_normalize: bool, ignore_missing: bool
    ) -> np.ndarray:
        """gensim's get_mean_vector: sum(w * v) / sum(|w|) in float64; keys may be unit-normed, arrays never."""
        mean = np.zeros(self.vector_size, dtype=np.float64)
        total = 0.0
        for item, w in zip(items, weights):
            if isinstance(item, np.ndarray):
                if item.shape != (self.vector_size,):
                    raise ValueError(f"a query vector must have shape ({self.vector_size},), got {item.shape}")
                mean += w * item.astype(np.float64)
            elif self.has_index_for(item):
                mean += w * self.get_vector(item, norm=pre_normalize).astype(np.float64)
            elif ignore_missing:
                continue
            else:
                raise KeyError(f"Key {item!r} not present in vocabulary")
            total += abs(w)
        if total > 0:
            mean /= total
        return mean

    def _search_rows(self, restrict_vocab: Optional[int]) -> np.ndarray:
        normed = self.get_normed_vectors()
        if restrict_vocab:  # None and 0 both mean "all", as in gensim
            if restrict_vocab < 0:
                raise ValueError(f"restrict_vocab must be None or >= 0, got {restrict_vocab}")
            return normed[:restrict_vocab]
        return normed

    def _search_packed(self, restrict_vocab: Optional[int]) -> Optional[ops.PackedLinear]:
        """The searched unit rows packed once for the fused top-k op (None for an empty vocabulary)."""
        rows = self._search_rows(restrict_vocab)
        if rows.shape[0] == 0:
            return None
        packed = self._packed.get(rows.shape[0])
        if packed is None:
            packed = self._packed[rows.shape[0]] = ops.PackedLinear(np.ascontiguousarray(rows))
        return packed

    def _pairs(self, indices: np.ndarray, scores: np.ndarray) -> List[List[Tuple[str, float]]]:
        keys = self.index_to_key
        return [
            [(keys[i], s) for i, s in zip(row_i, row_s) if i >= 0]
            for row_i, row_s in zip(indices.tolist(), scores.tolist())
        ]

    def most_similar(
        self,
        positive: Any = None,
        negative: Any = None,
        topn: Optional[int] = 10,
        restrict_vocab: Optional[int] = None,
    ) -> Union[List[Tuple[str, float]], np.ndarray]:
        """The topn keys nearest (cosine) to the weighted mean of positive and negative items, as gensim does.

        Items are keys (unit-normed before averaging), raw vectors (not normed, as in gensim), or
        ``(item, weight)`` tuples; plain items weigh +1 in positive and -1 in negative. The mean is
        sum(w * v) / sum(|w|), then unit-normed. Keys given as input never appear in the result. With
        ``topn=None`` the (n,) float32 score array is returned instead. ``restrict_vocab`` searches only the
        first that many rows.
        """
        if topn is not None and not isinstance(topn, Integral):
            raise TypeError(f"topn must be an int or None, got {topn!r}")
        if topn is not None and topn < 1:
            return []
        positive, negative = _as_list(positive), _as_list(negative)
        weights = [1.0] * len(positive) + [-1.0] * len(negative)
        keys = []
        for i, item in enumerate(positive + negative):
            if isinstance(item, (str, int, np.integer, np.ndarray)):
                keys.append(item)
            else:  # (item, weight): the weight replaces +1 / -1, sign included, as in gensim
                keys.append(item[0])
                weights[i] = float(item[1])
        if not keys:
            raise ValueError("cannot compute mean with no input")
        mean = self._weighted_mean(keys, weights, pre_normalize=True, ignore_missing=False)
        norm = np.linalg.norm(mean)
        query = (mean / norm if norm > 0 else mean).astype(np.float32)[None, :]
        if topn is None:
            return self._search_rows(restrict_vocab) @ query[0]
        exclude = sorted({self.get_index(k) for k in keys if isinstance(k, _KEY_TYPES)})
        excl = np.asarray([exclude], dtype=np.int64) if exclude else None
        indices, scores = _top_k_scores(self._search_packed(restrict_vocab), query, int(topn), excl)
        return self._pairs(indices, scores)[0]

    def most_similar_batch(
        self,
        queries: Union[Sequence[Key], np.ndarray],
        topn: Optional[int] = 10,
        restrict_vocab: Optional[int] = None,
    ) -> Union[List[List[Tuple[str, float]]], np.ndarray]:
        """``most_similar`` for many single queries at once: one matrix product and a top-k per row.

        queries is a list of keys (each key is left out of its own result) or a (q, vector_size) array of
        query vectors (1-D: one query). Row r of the result equals ``most_similar(queries[r], topn)``. With
        ``topn=None`` the (q, n) float32 score matrix is returned.
        """
        if topn is not None and not isinstance(topn, Integral):
            raise TypeError(f"topn must be an int or None, got {topn!r}")
        if isinstance(queries, str):
            raise TypeError("queries must be a list of keys or an array of vectors, not a single str")
        if isinstance(queries, np.ndarray) and queries.dtype.kind in "fiub":
            q = queries.reshape(1, -1) if queries.ndim == 1 else queries
            if q.ndim != 2 or q.shape[1] != self.vector_size:
                raise ValueError(
                    f"query vectors must have shape (q, {self.vector_size}), got {queries.shape}"
                )
            query_rows = _unit_rows(q)
            exclude = None
        else:
            index = np.asarray([self.get_index(k) for k in queries], dtype=np.int64)
            query_rows = self.get_normed_vectors()[index]
            exclude = index[:, None]
        if topn is None:
            return query_rows @ self._search_rows(restrict_vocab).T
        if topn < 1:
            return [[] for _ in range(query_rows.shape[0])]
        indices, scores = _top_k_scores(self._search_packed(restrict_vocab), query_rows, int(topn), exclude)
        return self._pairs(indices, scores)

    def similarity(self, w1: Key, w2: Key) -> float:
        """Cosine similarity of two keys (0.0 if either vector is zero)."""
        return float(np.dot(self.get_vector(w1, norm=True), self.get_vector(w2, norm=True)))

    def distance(self, w1: Key, w2: Key) -> float:
        """1 - similarity(w1, w2)."""
        return 1.0 - self.similarity(w1, w2)

    def n_similarity(self, ws1: Sequence[Key], ws2: Sequence[Key]) -> float:
        """Cosine similarity of the means of two key lists' raw vectors.

        As in gensim, keys missing from the vocabulary are skipped, and an empty list raises
        ZeroDivisionError.
        """
        if isinstance(ws1, str) or isinstance(ws2, str):
            raise TypeError("n_similarity takes two lists of keys, not a str")
        if not (len(ws1) and len(ws2)):
            raise ZeroDivisionError("At least one of the passed list is empty.")
        m1 = self._weighted_mean(list(ws1), [1.0] * len(ws1), pre_normalize=False, ignore_missing=True)
        m2 = self._weighted_mean(list(ws2), [1.0] * len(ws2), pre_normalize=False, ignore_missing=True)
        n1, n2 = np.linalg.norm(m1), np.linalg.norm(m2)
        if n1 == 0 or n2 == 0:
            return 0.0
        return float(np.dot(m1 / n1, m2 / n2))

    # ---- files ---------------------------------------------------------------------------------------------

    @classmethod
    def load_word2vec_format(
        cls,
        path: PathOrFile,
        binary: bool = False,
        limit: Optional[int] = None,
        encoding: str = "utf8",
        unicode_errors: str = "strict",
        no_header: bool = False,
    ) -> "KeyedVectors":
        """Load a word2vec C-tool file (text or binary; .gz/.bz2/.xz decompressed), or with no_header=True a
        GloVe text file (no '<count> <dims>' line). See word2vec_format."""
        vectors, index_to_key, key_to_index = read_word2vec_format(
            path, binary=binary, limit=limit, encoding=encoding, unicode_errors=unicode_errors, no_header=no_header
        )
        return cls._from_checked(vectors, index_to_key, key_to_index)

    def save_word2vec_format(self, path: PathOrFile, binary: bool = False) -> None:
        """Write the same bytes gensim's save_word2vec_format writes for these keys, in index order."""
        write_word2vec_format(path, self._vectors, self.index_to_key, binary=binary)
