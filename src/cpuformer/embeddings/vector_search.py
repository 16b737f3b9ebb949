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
_GROUP = 128            # columns per group whose maximum is checked before the group is scanned


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
        # finite norms bound every element, and queries are unit or finite: then no score can be NaN
        finite=bool(np.isfinite(norms).all() and np.isfinite(queries).all()),
    )


def top_k_of_scores(scores: np.ndarray, k: int, exclude: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """top_k_cosine's selection over a given (q, n) score matrix (same order, padding and exclude rules)."""
    scores = np.atleast_2d(scores)
    n, q = scores.shape[1], scores.shape[0]
    return _select(n, q, max(n, 1), k, exclude, lambda a, b: np.array(scores[:, a:b], dtype=np.float32),
                   finite=False)


def _survivors(
    scores: np.ndarray, bar: np.ndarray, limit: int
) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(query, column, score) of the scores strictly above their query's bar, or None when more than about
    limit entries could be. Looks at every _GROUP-column group's maximum first and scans only the groups whose
    maximum passes, so a block where few entries pass costs one reduction instead of a full compare and scan."""
    q, width = scores.shape
    groups = width // _GROUP
    if groups < 4:
        return None
    head = scores[:, :groups * _GROUP].reshape(q, groups, _GROUP)
    live_q, live_g = np.nonzero(head.max(axis=2) > bar[:, None])  # scores hold no NaN here (see _select)
    if live_q.size * 8 > limit:  # about 8 survivors per live group or more: the full path is cheaper
        return None
    sub = head[live_q, live_g]                                   # (live groups, _GROUP)
    mi, mj = np.nonzero(sub > bar[live_q][:, None])
    tail_q, tail_c = np.nonzero(scores[:, groups * _GROUP:] > bar[:, None])
    qi = np.concatenate([live_q[mi], tail_q])
    ci = np.concatenate([live_g[mi] * _GROUP + mj, tail_c + groups * _GROUP])
    values = np.concatenate([sub[mi, mj], scores[tail_q, tail_c + groups * _GROUP]])
    return qi, ci, values


def _select(
    n: int, q: int, step: int, k: int, exclude: Optional[np.ndarray], score_block: Callable[[int, int], np.ndarray],
    finite: bool,
) -> Tuple[np.ndarray, np.ndarray]:
    """Exact top-k over column blocks [start, start + step) whose (q, width) scores score_block returns (a new
    array that may be modified). finite=True promises that no score is NaN (skips a pass per block)."""
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
        if not finite:
            scores[np.isnan(scores)] = -np.inf  # NaN would hide a group's maximum and rank highest in partition
        found = _survivors(scores, cands.bar, 4 * k * q + 1024)
        trimmed = found is None
        if trimmed:  # too many survivors (the first block, or rising scores): keep this block's k best only
            width = stop - start
            above = scores > cands.bar[:, None]
            if width > k:
                kth = np.partition(scores, width - k, axis=1)[:, width - k]
                above &= scores >= kth[:, None]
            qi, ri = np.nonzero(above)
            found = qi, ri, scores[qi, ri]
        qi, ri, values = found
        cands.add(qi, ri + start, values)
        if trimmed:
            cands.compact()  # raise the bar now, so the next blocks are filtered by it
    query, row, score, rank = cands.compact()
    indices[query, rank] = row
    scores_out[query, rank] = score
    return indices, scores_out
