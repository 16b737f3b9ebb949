"""Cosine top-k over the raw word vectors, reading them in place: no unit-norm or packed copy is kept.

scores = (queries @ vectors.T) / norms, the way gensim computes them, one block of rows at a time so the score
matrix never exceeds _SCORE_BLOCK entries. Selection keeps, per query, the candidates that can still reach the
k best (a running k-th best score as the bar; np.partition trims a block whose survivors are many) and sorts
only those, so results are exact: best first, equal scores in ascending row order.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

__all__ = ["row_norms", "top_k_cosine", "top_k_of_scores", "cosine_scores"]

_SCORE_BLOCK = 1 << 22  # scores held at once (16 MiB of float32)
_NORM_ROWS = 1 << 16    # rows per block when computing norms (bounds the squared temporary)


def row_norms(vectors: np.ndarray) -> np.ndarray:
    """(n,) float32 L2 norms, as np.linalg.norm computes them (gensim's fill_norms), zero norms replaced by 1
    so that dividing by them leaves a zero row zero instead of NaN."""
    norms = np.empty(vectors.shape[0], dtype=np.float32)
    for a in range(0, vectors.shape[0], _NORM_ROWS):
        norms[a:a + _NORM_ROWS] = np.linalg.norm(vectors[a:a + _NORM_ROWS], axis=1)
    norms[norms == 0] = 1
    return norms


def cosine_scores(vectors: np.ndarray, norms: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(q, n) float32 scores of unit queries (q, d) against every row: (queries @ vectors.T) / norms."""
    scores = np.asarray(queries, dtype=np.float32) @ vectors.T
    scores /= norms
    return scores


def _block_rows(n: int, q: int) -> int:
    return max(1, min(n, _SCORE_BLOCK // max(q, 1)))


class _Candidates:
    """Per-query candidate (row, score) triples; compact() keeps each query's k best and raises its bar."""

    def __init__(self, q: int, k: int):
        self.k = k
        self.bar = np.full(q, -np.inf, dtype=np.float32)  # a row must score strictly above this to enter
        self.parts: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.size = 0

    def add(self, query: np.ndarray, row: np.ndarray, score: np.ndarray) -> None:
        self.parts.append((query, row, score))
        self.size += query.size
        if self.size > max(8 * self.k * self.bar.size, 1 << 16):
            self.compact()

    def compact(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Keep each query's k best; return (query, row, score, rank) of the kept, sorted by query then rank."""
        if not self.parts:
            empty = np.empty(0, np.int64)
            return empty, empty, np.empty(0, np.float32), empty
        query = np.concatenate([p[0] for p in self.parts])
        row = np.concatenate([p[1] for p in self.parts])
        score = np.concatenate([p[2] for p in self.parts])
        order = np.lexsort((row, -score, query))  # by query, then score descending, then row ascending
        query, row, score = query[order], row[order], score[order]
        first = np.searchsorted(query, query, side="left")
        rank = np.arange(query.size) - first
        keep = rank < self.k
        query, row, score, rank = query[keep], row[keep], score[keep], rank[keep]
        self.parts = [(query, row, score)]
        self.size = query.size
        full = rank == self.k - 1
        self.bar[query[full]] = score[full]
        return query, row, score, rank


def top_k_cosine(
    vectors: np.ndarray, norms: np.ndarray, queries: np.ndarray, k: int, exclude: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """The k rows of vectors (n, d) with the highest cosine score for each unit query (q, d).

    norms is row_norms(vectors). exclude is None or (q, e) int64 rows never returned for that query (-1 or
    >= n: no entry). Returns (indices (q, min(k, n)) int64, scores float32), best first, equal scores in
    ascending row order; NaN and -inf never qualify, and a query with fewer eligible rows is padded with
    index -1 and score -inf.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    step = _block_rows(vectors.shape[0], queries.shape[0])
    return _select(
        vectors.shape[0], queries.shape[0], step, k, exclude,
        lambda a, b: cosine_scores(vectors[a:b], norms[a:b], queries),
    )


def top_k_of_scores(scores: np.ndarray, k: int, exclude: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """top_k_cosine's selection over a given (q, n) score matrix (same order, padding and exclude rules)."""
    scores = np.atleast_2d(scores)
    n, q = scores.shape[1], scores.shape[0]
    return _select(n, q, max(n, 1), k, exclude, lambda a, b: np.array(scores[:, a:b], dtype=np.float32))


def _select(
    n: int, q: int, step: int, k: int, exclude: Optional[np.ndarray], score_block: Callable[[int, int], np.ndarray]
) -> Tuple[np.ndarray, np.ndarray]:
    """Exact top-k over column blocks [start, start + step) whose (q, width) scores score_block returns (a new
    array that may be modified)."""
    k = min(int(k), n)
    indices = np.full((q, k), -1, dtype=np.int64)
    scores_out = np.full((q, k), -np.inf, dtype=np.float32)
    if k == 0 or q == 0:
        return indices, scores_out
    cands = _Candidates(q, k)
    for start in range(0, n, step):
        stop = min(n, start + step)
        scores = score_block(start, stop)
        if exclude is not None and exclude.size:
            hit = (exclude >= start) & (exclude < stop)
            scores[np.nonzero(hit)[0], exclude[hit] - start] = -np.inf
        scores[np.isnan(scores)] = -np.inf
        above = scores > cands.bar[:, None]
        width = stop - start
        if width > k and np.count_nonzero(above) > 4 * k * q + 1024:
            kth = np.partition(scores, width - k, axis=1)[:, width - k]
            above &= scores >= kth[:, None]
        qi, ri = np.nonzero(above)
        cands.add(qi, ri + start, scores[qi, ri])
    query, row, score, rank = cands.compact()
    indices[query, rank] = row
    scores_out[query, rank] = score
    return indices, scores_out
