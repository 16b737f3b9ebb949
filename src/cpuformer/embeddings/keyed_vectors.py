"""KeyedVectors: word -> vector lookup and cosine nearest neighbours, with gensim 4.x semantics.

One copy of the vectors is kept, (n, dim) float32, owned or memory-mapped, plus their (n,) norms once the first
query needs them: like gensim, scores are (vectors @ query) / norms, computed block by block by
vector_search.top_k_cosine, so neither a unit-norm nor a packed copy of the matrix exists.
"""
from __future__ import annotations

import os
import warnings
from numbers import Integral
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import evaluation, native_format
from .vector_search import cosine_scores, row_norms, top_k_cosine, top_k_of_scores
from .word2vec_format import PathOrFile, read_word2vec_format, read_word_counts, write_word2vec_format

__all__ = ["KeyedVectors"]

Key = Union[str, int]
_KEY_TYPES = (str, int, np.integer)


def _as_list(value: Any) -> list:
    """gensim's rule: a single key or 1-D vector becomes a one-item list, a 2-D array a list of rows."""
    if value is None:
        return []
    if isinstance(value, _KEY_TYPES) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [value]
    return list(value)


def _check_topn(topn: Any) -> None:
    if topn is not None and (not isinstance(topn, Integral) or isinstance(topn, bool)):
        raise TypeError(f"topn must be an int or None, got {topn!r}")


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
        self._norms: Optional[np.ndarray] = None
        # gensim's "count" vecattr when known: a list, or a range for the counts made up on load (no memory)
        self._counts: Optional[Sequence[Optional[int]]] = None

    @classmethod
    def _from_checked(
        cls, vectors: np.ndarray, index_to_key: List[str], key_to_index: Dict[str, int]
    ) -> "KeyedVectors":
        self = cls.__new__(cls)
        KeyedVectors._init(self, vectors, index_to_key, key_to_index)
        return self

    # ---- storage -------------------------------------------------------------------------------------------

    @property
    def vectors(self) -> np.ndarray:
        """(n, vector_size) float32. Assigning a matrix resets the cached norms; editing this one in place does
        not, so after in-place edits reassign it (``kv.vectors = kv.vectors``)."""
        return self._vectors

    @vectors.setter
    def vectors(self, value: np.ndarray) -> None:
        value = np.ascontiguousarray(value, dtype=np.float32)
        if value.ndim != 2 or value.shape[0] != len(self.index_to_key):
            raise ValueError(f"vectors must have shape ({len(self.index_to_key)}, dim), got {value.shape}")
        self._vectors = value
        self._norms = None

    @property
    def vector_size(self) -> int:
        return self._vectors.shape[1]

    @property
    def norms(self) -> np.ndarray:
        """(n,) float32 row norms, computed on first use; zero rows have norm 1 here so they stay zero."""
        if self._norms is None:
            self._norms = row_norms(self._vectors)
        return self._norms

    def fill_norms(self, force: bool = False) -> None:
        """Compute the norms now (gensim's name); they are otherwise computed by the first query."""
        if force:
            self._norms = None
        _ = self.norms

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
        """The key's row (read-only; with norm=True a new unit-length array, a zero vector stays zero)."""
        index = self.get_index(key)
        row = self._vectors[index]
        if norm:
            row = row / self.norms[index]
        row.setflags(write=False)
        return row

    def __getitem__(self, key_or_keys: Union[Key, Iterable[Key]]) -> np.ndarray:
        """One key: its vector (1-D, read-only view). A list of keys: a new (len, vector_size) array."""
        if isinstance(key_or_keys, _KEY_TYPES):
            return self.get_vector(key_or_keys)
        rows = [self.get_vector(k) for k in key_or_keys]
        return np.stack(rows) if rows else np.empty((0, self.vector_size), dtype=np.float32)

    def get_normed_vectors(self) -> np.ndarray:
        """A new (n, vector_size) array of unit-length rows (zero rows stay zero), as gensim 4 computes it on
        each call; it is not cached, so holding it doubles the memory of the vectors."""
        return self._vectors / self.norms[:, None]

    # ---- counts (gensim's "count" attribute) ---------------------------------------------------------------

    def get_vecattr(self, key: Key, attr: str) -> Optional[int]:
        """gensim's per-key attribute; only "count" exists (from fvocab, or made up on load as gensim does)."""
        if attr != "count" or self._counts is None:
            raise KeyError(f"attribute {attr!r} is not set on these vectors (only 'count' can be)")
        return self._counts[self.get_index(key)]

    def set_vecattr(self, key: Key, attr: str, value: Optional[int]) -> None:
        if attr != "count":
            raise KeyError(f"only the 'count' attribute is supported, got {attr!r}")
        index = self.get_index(key)
        if not isinstance(self._counts, list):  # None, or the made-up counts kept as a range
            self._counts = [None] * len(self) if self._counts is None else list(self._counts)
        self._counts[index] = None if value is None else int(value)

    # ---- similarity ----------------------------------------------------------------------------------------

    def _key_vector(self, key: Any, norm: bool) -> Optional[np.ndarray]:
        """The vector a key stands for, or None when there is none (FastTextKeyedVectors builds OOV ones)."""
        return self.get_vector(key, norm=norm) if self.has_index_for(key) else None

    def _weighted_mean(
        self, items: list, weights: Sequence[float], pre_normalize: bool, ignore_missing: bool
    ) -> np.ndarray:
        """gensim's get_mean_vector: sum(w * v) / sum(|w|) in float64; keys may be unit-normed, arrays never."""
        mean = np.zeros(self.vector_size, dtype=np.float64)
        total = 0.0
        for item, w in zip(items, weights):
            if isinstance(item, np.ndarray):
                if item.shape != (self.vector_size,):
                    raise ValueError(f"a query vector must have shape ({self.vector_size},), got {item.shape}")
                mean += w * item.astype(np.float64)
            else:
                vec = self._key_vector(item, pre_normalize)
                if vec is None:
                    if ignore_missing:
                        continue
                    raise KeyError(f"Key {item!r} not present in vocabulary")
                mean += w * vec.astype(np.float64)
            total += abs(w)
        if total > 0:
            mean /= total
        return mean

    def get_mean_vector(
        self,
        keys: Any,
        weights: Optional[Sequence[float]] = None,
        pre_normalize: bool = True,
        post_normalize: bool = False,
        ignore_missing: bool = True,
    ) -> np.ndarray:
        """gensim's get_mean_vector: the (float32) weighted mean sum(w v) / sum(|w|) of keys and/or vectors.

        Keys are unit-normed first if pre_normalize (vectors never are); missing keys are skipped if
        ignore_missing, else KeyError; post_normalize returns the mean at unit length.
        """
        items = list(keys) if not isinstance(keys, (str, int, np.integer)) else [keys]
        if len(items) == 0:
            raise ValueError("cannot compute mean with no input")
        w = np.ones(len(items)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape[0] != len(items):
            raise ValueError("keys and weights array must have same number of elements")
        mean = self._weighted_mean(items, w.tolist(), pre_normalize, ignore_missing)
        if post_normalize:
            norm = np.linalg.norm(mean)
            if norm > 0:
                mean = mean / norm
        return mean.astype(np.float32)

    def _search_limit(self, restrict_vocab: Optional[int]) -> int:
        if restrict_vocab:  # None and 0 both mean "all", as in gensim
            if restrict_vocab < 0:
                raise ValueError(f"restrict_vocab must be None or >= 0, got {restrict_vocab}")
            return min(int(restrict_vocab), len(self))
        return len(self)

    def _search(
        self, queries: np.ndarray, topn: int, restrict_vocab: Optional[int], exclude: Optional[np.ndarray]
    ) -> Tuple[np.ndarray, np.ndarray]:
        limit = self._search_limit(restrict_vocab)
        return top_k_cosine(self._vectors[:limit], self.norms[:limit], queries, topn, exclude)

    def _all_scores(self, queries: np.ndarray, restrict_vocab: Optional[int]) -> np.ndarray:
        limit = self._search_limit(restrict_vocab)
        return cosine_scores(self._vectors[:limit], self.norms[:limit], queries)

    def _pairs(self, indices: np.ndarray, scores: np.ndarray) -> List[List[Tuple[str, float]]]:
        keys = self.index_to_key
        return [
            [(keys[i], s) for i, s in zip(row_i, row_s) if i >= 0]
            for row_i, row_s in zip(indices.tolist(), scores.tolist())
        ]

    def _input_rows(self, keys: Iterable[Any]) -> List[int]:
        """Rows of the keys given as input (they never appear in results); OOV and vectors have none."""
        return sorted({self.get_index(k) for k in keys if isinstance(k, _KEY_TYPES) and self.has_index_for(k)})

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
        _check_topn(topn)
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
            return self._all_scores(query, restrict_vocab)[0]
        exclude = self._input_rows(keys)
        excl = np.asarray([exclude], dtype=np.int64) if exclude else None
        return self._pairs(*self._search(query, int(topn), restrict_vocab, excl))[0]

    def similar_by_key(self, key: Key, topn: Optional[int] = 10, restrict_vocab: Optional[int] = None):
        return self.most_similar(positive=[key], topn=topn, restrict_vocab=restrict_vocab)

    similar_by_word = similar_by_key

    def similar_by_vector(self, vector: np.ndarray, topn: Optional[int] = 10, restrict_vocab: Optional[int] = None):
        return self.most_similar(positive=[vector], topn=topn, restrict_vocab=restrict_vocab)

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
        _check_topn(topn)
        if isinstance(queries, str):
            raise TypeError("queries must be a list of keys or an array of vectors, not a single str")
        if isinstance(queries, np.ndarray) and queries.dtype.kind in "fiub":
            q = queries.reshape(1, -1) if queries.ndim == 1 else queries
            if q.ndim != 2 or q.shape[1] != self.vector_size:
                raise ValueError(
                    f"query vectors must have shape (q, {self.vector_size}), got {queries.shape}"
                )
            q = q.astype(np.float32)
            query_rows = q / row_norms(q)[:, None]
            exclude = None
        else:
            index = np.asarray([self.get_index(k) for k in queries], dtype=np.int64)
            query_rows = self._vectors[index] / self.norms[index, None]
            exclude = index[:, None]
        if topn is None:
            return self._all_scores(query_rows, restrict_vocab)
        if topn < 1:
            return [[] for _ in range(query_rows.shape[0])]
        return self._pairs(*self._search(query_rows, int(topn), restrict_vocab, exclude))

    def most_similar_cosmul(
        self,
        positive: Any = None,
        negative: Any = None,
        topn: Optional[int] = 10,
        restrict_vocab: Optional[int] = None,
    ) -> Union[List[Tuple[str, float]], np.ndarray]:
        """Levy and Goldberg's 3CosMul, as gensim 4 computes it: prod((1 + cos(v, p)) / 2 for p in positive) /
        (prod((1 + cos(v, n)) / 2 for n in negative) + 1e-6). Keys are unit-normed, vectors used as given; keys
        given as input never appear in the result. Unlike gensim 4.4 (which ignores it), restrict_vocab
        searches only the first that many rows."""
        _check_topn(topn)
        if topn is not None and topn < 1:
            return []
        positive, negative = _as_list(positive), _as_list(negative)
        if not positive:
            raise ValueError("cannot compute similarity with no input")

        def term(item: Any) -> np.ndarray:
            if isinstance(item, np.ndarray):
                return item.astype(np.float32)
            vec = self._key_vector(item, True)
            if vec is None:
                raise KeyError(f"Key {item!r} not present in vocabulary")
            return vec

        terms = np.stack([term(t) for t in positive + negative])
        sims = self._all_scores(terms, restrict_vocab)  # (terms, n): cos with each row
        dists = np.prod((1 + sims[:len(positive)]) / 2, axis=0) / (
            np.prod((1 + sims[len(positive):]) / 2, axis=0) + np.float32(1e-6)
        )
        dists = dists.astype(np.float32)
        if topn is None:
            return dists
        exclude = np.asarray([self._input_rows(positive + negative)], dtype=np.int64)
        return self._pairs(*top_k_of_scores(dists, int(topn), exclude))[0]

    def rank_by_centrality(self, words: Sequence[Key], use_norm: bool = True) -> List[Tuple[float, Key]]:
        """(similarity to the unit mean of the words' vectors, word), most central first (gensim's order:
        sorted descending by score, then by word). Words without a vector are skipped with a warning."""
        used = [w for w in words if w in self]
        if len(used) != len(words):
            warnings.warn(f"vectors for words {set(words) - set(used)} are not present in the model, ignoring them")
        if not used:
            raise ValueError("cannot select a word from an empty list")
        vectors = np.stack([self._key_vector(w, use_norm) for w in used]).astype(np.float32)
        mean = self.get_mean_vector(list(vectors), post_normalize=True)
        dists = vectors @ mean
        return sorted(zip(dists.tolist(), used), reverse=True)

    def doesnt_match(self, words: Sequence[Key]) -> Key:
        """The word furthest from the mean of all the words (gensim's rule)."""
        return self.rank_by_centrality(words)[-1][1]

    def distances(self, word_or_vector: Any, other_words: Sequence[Key] = ()) -> np.ndarray:
        """1 - cosine similarity of a key's (or a vector's) raw vector to other_words, or to every row."""
        if isinstance(word_or_vector, _KEY_TYPES):
            vec = self._key_vector(word_or_vector, False)
            if vec is None:
                raise KeyError(f"Key {word_or_vector!r} not present")
        else:
            vec = np.asarray(word_or_vector, dtype=np.float32)
        if len(other_words):
            index = np.asarray([self.get_index(w) for w in other_words], dtype=np.int64)
            others, norms = self._vectors[index], self.norms[index]
        else:
            others, norms = self._vectors, self.norms
        return 1 - (others @ vec) / (np.linalg.norm(vec) * norms)

    def closer_than(self, key1: Key, key2: Key) -> List[str]:
        """Keys closer to key1 than key2 is (key1 itself left out)."""
        all_distances = self.distances(key1)
        e1, e2 = self.get_index(key1), self.get_index(key2)
        return [self.index_to_key[i] for i in np.flatnonzero(all_distances < all_distances[e2]) if i != e1]

    def rank(self, key1: Key, key2: Key) -> int:
        """1 + the number of keys closer to key1 than key2 is."""
        return len(self.closer_than(key1, key2)) + 1

    def most_similar_to_given(self, key1: Key, keys_list: Sequence[Key]) -> Key:
        return keys_list[int(np.argmax([self.similarity(key1, k) for k in keys_list]))]

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


    # ---- evaluation ----------------------------------------------------------------------------------------

    def evaluate_word_analogies(
        self,
        analogies: PathOrFile,
        restrict_vocab: int = 300000,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
        similarity_function: str = "most_similar",
    ) -> Tuple[float, List[Dict[str, Any]]]:
        """Accuracy on a questions-words file (": section" lines, then "a b c expected"), gensim 4's rules:
        3CosAdd over the first restrict_vocab keys, the first of the top 5 not among a, b, c is the answer.
        Returns (total accuracy, sections: dicts with 'section', 'correct', 'incorrect')."""
        if similarity_function != "most_similar":
            raise ValueError(f"similarity_function must be 'most_similar', got {similarity_function!r}")
        return evaluation.evaluate_word_analogies(self, analogies, restrict_vocab, case_insensitive, dummy4unknown)

    def evaluate_word_pairs(
        self,
        pairs: PathOrFile,
        delimiter: str = "\t",
        encoding: str = "utf8",
        restrict_vocab: int = 300000,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
    ) -> Tuple[evaluation.CorrelationResult, evaluation.CorrelationResult, float]:
        """Pearson and Spearman correlation (each (statistic, pvalue), as scipy gives them) of the model's cosine
        similarities with a wordsim/simlex file's scores ("a<delimiter>b<delimiter>score"), and the percentage
        of pairs with words outside the first restrict_vocab keys; gensim 4's rules."""
        return evaluation.evaluate_word_pairs(
            self, pairs, delimiter, encoding, restrict_vocab, case_insensitive, dummy4unknown
        )

    # ---- files ---------------------------------------------------------------------------------------------

    @classmethod
    def load_word2vec_format(
        cls,
        path: PathOrFile,
        fvocab: Optional[PathOrFile] = None,
        binary: bool = False,
        encoding: str = "utf8",
        unicode_errors: str = "strict",
        limit: Optional[int] = None,
        no_header: bool = False,
    ) -> "KeyedVectors":
        """Load a word2vec C-tool file (text or binary; .gz/.bz2/.xz decompressed), or with no_header=True a
        GloVe text file (no '<count> <dims>' line). See word2vec_format. fvocab: a "word count" per line file
        whose counts become get_vecattr(key, "count"); without it the counts are made up in descending order
        (vocabulary size - row), as gensim does."""
        vectors, index_to_key, key_to_index, announced = read_word2vec_format(
            path, binary=binary, limit=limit, encoding=encoding, unicode_errors=unicode_errors,
            no_header=no_header, return_count=True,
        )
        kv = cls._from_checked(vectors, index_to_key, key_to_index)
        if fvocab is None:
            kv._counts = range(announced, announced - len(index_to_key), -1)  # type: ignore[assignment]
        else:
            counts = read_word_counts(fvocab, unicode_errors)
            kv._counts = [counts.get(k) for k in index_to_key]
            missing = [k for k, c in zip(index_to_key, kv._counts) if c is None]
            if missing:
                warnings.warn(f"vocabulary file is incomplete: {len(missing)} word(s) missing, e.g. {missing[0]!r}")
        return kv

    def save_word2vec_format(self, path: PathOrFile, fvocab: Optional[PathOrFile] = None, binary: bool = False) -> None:
        """Write the bytes gensim's save_word2vec_format writes: keys in descending count order when counts are
        known (stable, so loaded vectors keep their order), else in index order. fvocab: also write "word
        count" lines, which needs every count."""
        order = list(range(len(self)))
        if self._counts is not None:
            missing = [self.index_to_key[i] for i, c in enumerate(self._counts) if c is None]
            if missing:
                if fvocab is not None:
                    raise ValueError(f"cannot write fvocab: no count for {missing[0]!r}")
            else:
                order = sorted(order, key=lambda i: -self._counts[i])  # type: ignore[index,operator]
        elif fvocab is not None:
            raise ValueError("cannot write fvocab: these vectors have no counts (load them with fvocab=...)")
        keys = [self.index_to_key[i] for i in order]
        if fvocab is not None:
            with open(os.fspath(fvocab), "wb") as f:  # type: ignore[arg-type]
                f.write("".join(f"{k} {self._counts[i]}\n" for k, i in zip(keys, order)).encode("utf8"))  # type: ignore[index]
        vectors = self._vectors if order == list(range(len(self))) else self._vectors[order]
        write_word2vec_format(path, vectors, keys, binary=binary)

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Save in cpuformer's own format: ``path`` (a small JSON file: keys, counts) and ``path.vectors.npy``
        (the float32 matrix), which ``load(path, mmap="r")`` maps read-only instead of reading."""
        native_format.save(path, self, {"vectors": self._vectors})

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], mmap: Optional[str] = None) -> "KeyedVectors":
        """Load what ``save`` wrote. ``mmap="r"`` maps the .npy files read-only (pages are read on demand and
        shared between processes) instead of reading them; the result's ``vectors`` is then read-only."""
        return native_format.load(path, mmap, expected=cls)
