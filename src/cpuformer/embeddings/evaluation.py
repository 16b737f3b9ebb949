"""Word-vector benchmarks with gensim 4's rules: analogies (questions-words) and similarity pairs (wordsim, simlex).

Pearson and Spearman correlations and their two-sided p-values are computed here in float64 (scipy is not a
runtime dependency): both p-values come from the regularized incomplete beta function, evaluated with the
continued fraction of Numerical Recipes section 6.4 (modified Lentz).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .vector_search import top_k_cosine
from .word2vec_format import PathOrFile, Word2VecFormatError, _open

if TYPE_CHECKING:  # pragma: no cover
    from .keyed_vectors import KeyedVectors

__all__ = ["CorrelationResult", "pearson", "spearman", "evaluate_word_analogies", "evaluate_word_pairs"]

_ANALOGY_TOPN = 5      # gensim takes the first acceptable key among the 5 nearest
_QUERY_BATCH = 1024    # analogy questions scored per top-k call


class CorrelationResult(NamedTuple):
    """(statistic, pvalue), indexable like scipy's result objects."""

    statistic: float
    pvalue: float


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _check_pairs(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D and of equal length, got {x.shape} and {y.shape}")
    if x.size < 2:
        raise ValueError("x and y must have length at least 2.")


def pearson(x: Any, y: Any) -> CorrelationResult:
    """Pearson's r and its two-sided p-value (r's null distribution is Beta(n/2 - 1, n/2 - 1) on [-1, 1])."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _check_pairs(x, y)
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    if nx == 0 or ny == 0:  # a constant input: undefined, as in scipy
        return CorrelationResult(float("nan"), float("nan"))
    r = float(np.clip(np.dot(xm / nx, ym / ny), -1.0, 1.0))
    n = x.size
    if n == 2:
        return CorrelationResult(r, 1.0)
    ab = n / 2 - 1
    return CorrelationResult(r, min(1.0, 2 * betainc(ab, ab, (1 - abs(r)) / 2)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks (scipy.stats.rankdata's 'average')."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x: Any, y: Any) -> CorrelationResult:
    """Spearman's rho (Pearson's r of the average ranks) and its two-sided p-value from Student's t with n - 2
    degrees of freedom, as scipy.stats.spearmanr computes them."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _check_pairs(x, y)
    rho = pearson(_average_ranks(x), _average_ranks(y)).statistic
    if math.isnan(rho):
        return CorrelationResult(rho, float("nan"))
    df = x.size - 2
    if df <= 0 or abs(rho) >= 1.0:
        return CorrelationResult(rho, 0.0 if df > 0 else float("nan"))
    t2 = rho * rho * df / ((1.0 - rho) * (1.0 + rho))
    return CorrelationResult(rho, betainc(df / 2, 0.5, df / (df + t2)))


def _ok_vocab(kv: "KeyedVectors", restrict_vocab: int, case_insensitive: bool) -> Dict[str, int]:
    """gensim's ok_vocab: the first restrict_vocab keys (upper-cased), each mapped to its first row."""
    ok: Dict[str, int] = {}
    for i, key in enumerate(kv.index_to_key[:restrict_vocab]):
        ok.setdefault(key.upper() if case_insensitive else key, i)
    return ok


def _read_all(path: PathOrFile) -> Tuple[bytes, str]:
    f, name, owned = _open(path, "rb")
    try:
        return f.read(), name
    finally:
        if owned:
            f.close()


def _decode(data: bytes, encoding: str, name: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise Word2VecFormatError(f"{name}: not valid {encoding} ({e.reason} at byte {e.start})") from None


def _binary_lines(path: PathOrFile) -> List[str]:
    """Lines as gensim reads the analogy file: split at b"\n" in binary mode, each decoded as utf8."""
    data, name = _read_all(path)
    text = _decode(data, "utf8", name)
    return [line + "\n" for line in text.split("\n")[:-1]] + ([text.rsplit("\n", 1)[-1]] if text else [])


def _text_mode_lines(path: PathOrFile, encoding: str) -> List[str]:
    """Lines as Python's text mode gives them (universal newlines: \r\n and \r become \n)."""
    data, name = _read_all(path)
    text = _decode(data, encoding, name).replace("\r\n", "\n").replace("\r", "\n")
    return [line + "\n" for line in text.split("\n")[:-1]] + ([text.rsplit("\n", 1)[-1]] if text else [])


def evaluate_word_analogies(
    kv: "KeyedVectors", analogies: PathOrFile, restrict_vocab: int, case_insensitive: bool, dummy4unknown: bool
) -> Tuple[float, List[Dict[str, Any]]]:
    """See KeyedVectors.evaluate_word_analogies. Questions are answered in batches of _QUERY_BATCH."""
    ok_vocab = _ok_vocab(kv, restrict_vocab, case_insensitive)
    name = str(getattr(analogies, "name", analogies))
    sections: List[Dict[str, Any]] = []
    section = None
    questions: List[Tuple[Dict[str, Any], Tuple[str, str, str, str]]] = []
    entries: List[Tuple[Dict[str, Any], Tuple[str, str, str, str], Optional[bool]]] = []  # file order
    for line_no, line in enumerate(_binary_lines(analogies)):
        if line.startswith(": "):
            section = {"section": line.lstrip(": ").strip(), "correct": [], "incorrect": []}
            sections.append(section)
            continue
        if section is None:
            raise ValueError(f"Missing section header before line #{line_no} in {name}")
        words = [w.upper() for w in line.split()] if case_insensitive else line.split()
        if len(words) != 4:
            continue  # gensim skips invalid lines
        quad = (words[0], words[1], words[2], words[3])
        if any(w not in ok_vocab for w in quad):
            if dummy4unknown:
                entries.append((section, quad, False))
            continue
        entries.append((section, quad, None))
        questions.append((section, quad))

    answers: List[bool] = []
    limit = kv._search_limit(restrict_vocab)
    vectors, norms = kv.vectors[:limit], kv.norms[:limit]
    for start in range(0, len(questions), _QUERY_BATCH):
        batch = questions[start:start + _QUERY_BATCH]
        rows = np.asarray([[ok_vocab[w] for w in quad[:3]] for _, quad in batch], dtype=np.int64)
        unit = vectors[rows] / norms[rows][:, :, None]  # (q, 3, dim): a, b, c
        mean = (unit[:, 1].astype(np.float64) + unit[:, 2] - unit[:, 0]) / 3  # b + c - a, as most_similar
        mean_norm = np.linalg.norm(mean, axis=1, keepdims=True)
        query = (mean / np.where(mean_norm > 0, mean_norm, 1)).astype(np.float32)
        indices, _ = top_k_cosine(vectors, norms, query, _ANALOGY_TOPN, rows)
        for (_, quad), found in zip(batch, indices.tolist()):
            predicted = None
            for i in found:
                if i < 0:
                    break
                key = kv.index_to_key[i]
                predicted = key.upper() if case_insensitive else key
                if predicted in ok_vocab and predicted not in quad[:3]:
                    break
            answers.append(predicted == quad[3])
    answered = iter(answers)
    for sec, quad, known in entries:  # in file order, as gensim fills the lists
        ok = next(answered) if known is None else known
        sec["correct" if ok else "incorrect"].append(quad)
    # gensim appends a section when the next one starts; sections are in file order either way
    total = {
        "section": "Total accuracy",
        "correct": [q for s in sections for q in s["correct"]],
        "incorrect": [q for s in sections for q in s["incorrect"]],
    }
    sections.append(total)
    correct, incorrect = len(total["correct"]), len(total["incorrect"])
    score = correct / (correct + incorrect) if correct + incorrect else 0.0
    return score, sections


def evaluate_word_pairs(
    kv: "KeyedVectors",
    pairs: PathOrFile,
    delimiter: str,
    encoding: str,
    restrict_vocab: int,
    case_insensitive: bool,
    dummy4unknown: bool,
) -> Tuple[CorrelationResult, CorrelationResult, float]:
    """See KeyedVectors.evaluate_word_pairs."""
    ok_vocab = _ok_vocab(kv, restrict_vocab, case_insensitive)
    gold: List[float] = []
    model: List[float] = []
    oov = 0
    for line in _text_mode_lines(pairs, encoding):
        if not line or line.startswith("#"):
            continue
        parts = line.split(delimiter)
        if case_insensitive:
            parts = [p.upper() for p in parts]
        if len(parts) != 3:
            continue
        try:
            sim = float(parts[2])
        except ValueError:
            continue
        a, b = parts[0], parts[1]
        if a not in ok_vocab or b not in ok_vocab:
            oov += 1
            if dummy4unknown:
                model.append(0.0)
                gold.append(sim)
            continue
        gold.append(sim)
        model.append(kv.similarity(ok_vocab[a], ok_vocab[b]))
    if not gold:
        name = str(getattr(pairs, "name", pairs))
        raise ValueError(
            f"No valid similarity judgements found in {name}: either invalid format or all are "
            f"out-of-vocabulary in {kv!r}"
        )
    oov_ratio = oov / len(gold) * 100 if dummy4unknown else oov / (len(gold) + oov) * 100
    return pearson(gold, model), spearman(gold, model), float(oov_ratio)
