"""KeyedVectors lookups and nearest neighbours, compared with gensim 4 on the same vectors."""
import re

import numpy as np
import pytest

import reference as ref
from helpers import given, hnp, settings, st

gensim_models = pytest.importorskip("gensim.models")
GKV = gensim_models.KeyedVectors

from cpuformer.embeddings import KeyedVectors  # noqa: E402
from cpuformer.embeddings.vector_search import row_norms, top_k_cosine, top_k_of_scores  # noqa: E402

# Cosine scores agree with gensim's to this (float32 dot products summed in a different order); neighbours whose
# scores differ by less than that count as tied and may swap places.
SCORE_ATOL = ref.TOLERANCE["cosine_vs_gensim"][1]

N, DIM, ZERO_ROW = 2000, 48, 5
UNICODE_WORDS = ["naïve", "日本語", "Ζεύς", "straße", "🙂", "a\u00a0b"]
WORDS = [f"w{i}" for i in range(N - len(UNICODE_WORDS))] + UNICODE_WORDS


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(ours, gensim's) loaded from one file that gensim wrote; row ZERO_ROW is all zeros."""
    rng = np.random.default_rng(1234)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    vectors[ZERO_ROW] = 0
    g = GKV(DIM)
    g.add_vectors(WORDS, vectors)
    path = tmp_path_factory.mktemp("kv") / "vectors.bin"
    g.save_word2vec_format(str(path), binary=True)
    return KeyedVectors.load_word2vec_format(path, binary=True), GKV.load_word2vec_format(str(path), binary=True)


def assert_same_neighbours(ours, theirs):
    """Same length, scores within SCORE_ATOL position by position, and the same words except inside groups of
    (near-)tied scores, where only the set must match; a tie group reaching the end of the list may also
    hold different words, since the cut-off can fall inside it."""
    assert len(ours) == len(theirs)
    for (_, s1), (_, s2) in zip(ours, theirs):
        assert s1 == pytest.approx(s2, abs=SCORE_ATOL)
    start = 0
    for end in range(1, len(theirs) + 1):
        if end == len(theirs) or theirs[end - 1][1] - theirs[end][1] > SCORE_ATOL:
            group_ours = {w for w, _ in ours[start:end]}
            group_theirs = {w for w, _ in theirs[start:end]}
            if end < len(theirs) or end - start == 1:
                assert group_ours == group_theirs, (start, end, ours, theirs)
            start = end


# ---- construction and lookups --------------------------------------------------------------------------------------


def test_constructor_and_attributes():
    vecs = np.arange(12, dtype=np.float64).reshape(4, 3)
    kv = KeyedVectors(vecs, ["a", "b", "c", "ü"])
    assert kv.vectors.dtype == np.float32 and kv.vectors.flags.c_contiguous
    assert kv.vector_size == 3 and len(kv) == 4
    assert kv.index_to_key == ["a", "b", "c", "ü"]
    assert kv.key_to_index == {"a": 0, "b": 1, "c": 2, "ü": 3}
    assert "ü" in kv and "zz" not in kv
    np.testing.assert_array_equal(kv["c"], [6, 7, 8])
    np.testing.assert_array_equal(kv[["c", "a"]], [[6, 7, 8], [0, 1, 2]])
    assert kv[[]].shape == (0, 3)
    assert repr(kv) == "KeyedVectors<vector_size=3, 4 keys>"


def test_float32_input_is_shared_not_copied():
    vecs = np.ones((2, 3), np.float32)
    assert KeyedVectors(vecs, ["a", "b"]).vectors is vecs


@pytest.mark.parametrize("vectors, keys, error, message", [
    (np.ones(3), ["a"], ValueError, "vectors must be a 2-D array (n_keys, vector_size), got shape (3,)"),
    (np.ones((2, 3)), ["a"], ValueError, "index_to_key has 1 keys but vectors has 2 rows"),
    (np.ones((3, 3)), ["a", "b", "a"], ValueError, "duplicate key 'a' at positions 0 and 2"),
    (np.ones((2, 3)), ["a", 7], TypeError, "keys must be str, got 7 (int) at position 1"),
])
def test_constructor_errors(vectors, keys, error, message):
    with pytest.raises(error, match=re.escape(message)):
        KeyedVectors(vectors, keys)


def test_missing_key_errors_name_the_key(pair):
    ours, _ = pair
    for call in (lambda: ours["nope"], lambda: ours.get_vector("nope"), lambda: ours[["w1", "nope"]],
                 lambda: ours.similarity("w1", "nope"), lambda: ours.most_similar_batch(["w1", "nope"])):
        with pytest.raises(KeyError, match="Key 'nope' not present"):
            call()
    with pytest.raises(KeyError, match="Key 'nope' not present in vocabulary"):
        ours.most_similar("nope")


def test_lookups_match_gensim(pair):
    ours, theirs = pair
    for key in ["w0", "naïve", "🙂", 17]:
        np.testing.assert_array_equal(ours[key], theirs[key])
        np.testing.assert_array_equal(ours.get_vector(key, norm=True), theirs.get_vector(key, norm=True))
    np.testing.assert_array_equal(ours[["Ζεύς", "w3"]], theirs[["Ζεύς", "w3"]])
    assert (17 in ours) == (17 in theirs) and (N in ours) == (N in theirs)


def test_get_vector_is_read_only(pair):
    ours, _ = pair
    with pytest.raises(ValueError, match="read-only"):
        ours.get_vector("w1")[0] = 1.0


def test_normed_vectors_unit_zero_safe_and_not_kept(pair):
    ours, theirs = pair
    normed = ours.get_normed_vectors()
    assert normed is not ours.get_normed_vectors()  # computed per call, as gensim 4 does: no second copy is kept
    assert not np.isnan(normed).any()
    np.testing.assert_array_equal(normed[ZERO_ROW], 0)
    norms = np.linalg.norm(normed, axis=1)
    ref.assert_close(np.delete(norms, ZERO_ROW), np.ones(N - 1), "unit_norm")
    with np.errstate(invalid="ignore"):
        reference = theirs.get_normed_vectors()  # NaN in the zero row
    np.testing.assert_array_equal(np.delete(normed, ZERO_ROW, 0), np.delete(reference, ZERO_ROW, 0))


def test_assigning_vectors_resets_the_normed_cache():
    kv = KeyedVectors(np.array([[3, 4], [1, 0]], np.float32), ["a", "b"])
    np.testing.assert_allclose(kv.get_vector("a", norm=True), [0.6, 0.8])
    kv.vectors = np.array([[0, 2], [1, 0]], np.float32)
    np.testing.assert_allclose(kv.get_vector("a", norm=True), [0, 1])
    with pytest.raises(ValueError, match=re.escape("vectors must have shape (2, dim), got (3, 2)")):
        kv.vectors = np.ones((3, 2))


# ---- similarity --------------------------------------------------------------------------------------------------


def test_similarity_distance_n_similarity_match_gensim(pair):
    ours, theirs = pair
    for a, b in [("w1", "w2"), ("naïve", "日本語"), ("w9", "w9")]:
        assert ours.similarity(a, b) == pytest.approx(float(theirs.similarity(a, b)), abs=SCORE_ATOL)
        assert ours.distance(a, b) == pytest.approx(float(theirs.distance(a, b)), abs=SCORE_ATOL)
    for ws1, ws2 in [(["w1", "w4"], ["w2"]), (["straße", "w7", "w8"], ["w7", "Ζεύς"]), (["w1", "missing"], ["w2"])]:
        assert ours.n_similarity(ws1, ws2) == pytest.approx(float(theirs.n_similarity(ws1, ws2)), abs=SCORE_ATOL)
    assert isinstance(ours.similarity("w1", "w2"), float)


def test_zero_vector_similarity_is_zero_not_nan(pair):
    ours, _ = pair
    assert ours.similarity(ZERO_ROW, "w1") == 0.0
    assert ours.n_similarity([ZERO_ROW], ["w1"]) == 0.0
    # gensim's mean turns NaN here (0/0 when norming the zero row) and every score with it; ours ignores the row
    alone = ours.most_similar("w2", topn=20)
    with_zero = ours.most_similar([ZERO_ROW, "w2"], topn=20)
    assert [w for w, _ in with_zero] == [w for w, _ in alone if w != WORDS[ZERO_ROW]][:20]
    assert ours.most_similar(ZERO_ROW, topn=3) == [("w0", 0.0), ("w1", 0.0), ("w2", 0.0)]


def test_n_similarity_errors():
    kv = KeyedVectors(np.eye(2, dtype=np.float32), ["a", "b"])
    with pytest.raises(ZeroDivisionError, match="At least one of the passed list is empty."):
        kv.n_similarity([], ["a"])
    with pytest.raises(TypeError, match="n_similarity takes two lists of keys, not a str"):
        kv.n_similarity("ab", ["a"])


MOST_SIMILAR_CASES = [
    dict(positive="w1"),
    dict(positive=["naïve"], topn=25),
    dict(positive=["w1", "w2"], negative=["w3"]),
    dict(positive=["w10", "w20"], negative=["w30", "w40"], topn=1),
    dict(positive=[("w1", 2.0), ("w2", 0.5)], negative=[("w3", -1.5)]),
    dict(positive="w50", restrict_vocab=300),
    dict(positive=["w1", "w1"], topn=5),
    dict(positive=[17], topn=4),
    dict(negative="w77"),
    dict(positive="w3", topn=N + 10),
]


@pytest.mark.parametrize("kwargs", MOST_SIMILAR_CASES, ids=[str(c) for c in MOST_SIMILAR_CASES])
def test_most_similar_matches_gensim(pair, kwargs):
    ours, theirs = pair
    with np.errstate(invalid="ignore"):  # gensim divides by the zero row's zero norm
        expected = theirs.most_similar(**kwargs)
    got = ours.most_similar(**kwargs)
    # gensim scores the zero row NaN (0/0) and ranks it arbitrarily; we score it 0.
    expected = [(w, s) for w, s in expected if w != WORDS[ZERO_ROW]]
    got = [(w, s) for w, s in got if w != WORDS[ZERO_ROW]]
    assert_same_neighbours(got, expected)
    assert all(isinstance(w, str) and isinstance(s, float) for w, s in got)


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # gensim, zero row
def test_most_similar_by_vector_matches_gensim(pair):
    ours, theirs = pair
    rng = np.random.default_rng(7)
    vec = rng.standard_normal(DIM).astype(np.float32) * 3
    assert_same_neighbours(ours.most_similar(vec, topn=15), theirs.most_similar(vec, topn=15))
    # a raw vector is not normed before averaging with a key (gensim's rule)
    kwargs = dict(positive=[vec, "w8"], negative=[ours["w6"]], topn=15)
    assert_same_neighbours(ours.most_similar(**kwargs), theirs.most_similar(**kwargs))
    two = rng.standard_normal((2, DIM)).astype(np.float32)
    assert_same_neighbours(ours.most_similar(two, topn=5), theirs.most_similar(two, topn=5))


@pytest.mark.parametrize("restrict_vocab", [None, 700])
def test_most_similar_topn_none_returns_all_scores(pair, restrict_vocab):
    ours, theirs = pair
    got = ours.most_similar(["w1", "w2"], ["w3"], topn=None, restrict_vocab=restrict_vocab)
    with np.errstate(invalid="ignore"):
        expected = theirs.most_similar(["w1", "w2"], ["w3"], topn=None, restrict_vocab=restrict_vocab)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert got[ZERO_ROW] == 0 and np.isnan(expected[ZERO_ROW])
    keep = np.arange(len(got)) != ZERO_ROW
    np.testing.assert_allclose(got[keep], expected[keep], atol=SCORE_ATOL)


def test_most_similar_small_topn_and_errors(pair):
    ours, _ = pair
    assert ours.most_similar("w1", topn=0) == [] and ours.most_similar("w1", topn=-3) == []
    with pytest.raises(ValueError, match="cannot compute mean with no input"):
        ours.most_similar()
    with pytest.raises(TypeError, match=re.escape("topn must be an int or None, got 2.5")):
        ours.most_similar("w1", topn=2.5)
    with pytest.raises(ValueError, match=re.escape(f"a query vector must have shape ({DIM},), got (3,)")):
        ours.most_similar(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="restrict_vocab must be None or >= 0, got -1"):
        ours.most_similar("w1", restrict_vocab=-1)


def test_most_similar_excludes_inputs_and_pads_nothing():
    kv = KeyedVectors(np.eye(3, dtype=np.float32), ["a", "b", "c"])
    assert [w for w, _ in kv.most_similar("a", topn=10)] == ["b", "c"]  # tied at 0: index order
    assert kv.most_similar(["a", "b", "c"], topn=10) == []


# ---- batches -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("topn", [1, 10, 37])
def test_most_similar_batch_words_match_gensim(pair, topn):
    ours, theirs = pair
    queries = WORDS[::97] + UNICODE_WORDS
    got = ours.most_similar_batch(queries, topn=topn)
    assert len(got) == len(queries)
    for q, row in zip(queries, got):
        with np.errstate(invalid="ignore"):
            expected = theirs.most_similar(q, topn=topn)
        expected = [(w, s) for w, s in expected if w != WORDS[ZERO_ROW]]
        row = [(w, s) for w, s in row if w != WORDS[ZERO_ROW]]
        assert_same_neighbours(row, expected)
        assert q not in [w for w, _ in row]


def test_most_similar_batch_equals_most_similar(pair):
    ours, _ = pair
    queries = WORDS[::50]
    batch = ours.most_similar_batch(queries, topn=12, restrict_vocab=900)
    for q, row in zip(queries, batch):
        assert_same_neighbours(row, ours.most_similar(q, topn=12, restrict_vocab=900))


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # gensim, zero row
def test_most_similar_batch_vectors_match_gensim(pair):
    ours, theirs = pair
    rng = np.random.default_rng(3)
    queries = rng.standard_normal((9, DIM)).astype(np.float32)
    queries[4] *= 100
    got = ours.most_similar_batch(queries, topn=8)
    for vec, row in zip(queries, got):
        assert_same_neighbours(row, theirs.most_similar(vec, topn=8))
    assert_same_neighbours(ours.most_similar_batch(queries[0], topn=8)[0], got[0])


def test_most_similar_batch_topn_none_and_errors(pair):
    ours, _ = pair
    scores = ours.most_similar_batch(["w1", "w2"], topn=None)
    assert scores.shape == (2, N)
    np.testing.assert_allclose(scores[1], ours.most_similar("w2", topn=None), atol=SCORE_ATOL)
    assert ours.most_similar_batch(["w1", "w2"], topn=0) == [[], []]
    assert ours.most_similar_batch([], topn=3) == []
    with pytest.raises(TypeError, match="not a single str"):
        ours.most_similar_batch("w1")
    with pytest.raises(ValueError, match=re.escape(f"query vectors must have shape (q, {DIM}), got (2, 3)")):
        ours.most_similar_batch(np.ones((2, 3), np.float32))


# ---- the swappable scoring + top-k step ------------------------------------------------------------------------------


def reference_top_k(matrix, queries, k, exclude):
    """Full sort, one query at a time: scores descending, ties by ascending index, excluded rows skipped."""
    out = []
    for r, q in enumerate(queries):
        scores = matrix.astype(np.float64) @ q.astype(np.float64)
        banned = set() if exclude is None else {int(i) for i in exclude[r]}
        order = sorted((i for i in range(len(matrix)) if i not in banned), key=lambda i: (-scores[i], i))
        out.append(order[:k])
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(0, 40), q=st.integers(0, 5), d=st.integers(1, 6), k=st.integers(1, 45))
def test_top_k_cosine_matches_reference(data, n, q, d, k):
    """Blocked scoring + candidate selection against a full sort, with many exact ties (small integer entries;
    unit norms so the division is exact); tiny blocks force the candidate bar and compaction paths."""
    import cpuformer.embeddings.vector_search as vs

    ints = hnp.arrays(np.int8, (n, d), elements=st.integers(-2, 2))
    matrix = data.draw(ints).astype(np.float32)
    queries = data.draw(hnp.arrays(np.int8, (q, d), elements=st.integers(-2, 2))).astype(np.float32)
    exclude = None
    if data.draw(st.booleans()):
        exclude = data.draw(hnp.arrays(np.int64, (q, data.draw(st.integers(0, 4))),
                                       elements=st.integers(-1, n + 2)))
    block = data.draw(st.sampled_from([1, 3, 1 << 22]))
    norms = np.ones(n, np.float32)
    old = vs._SCORE_BLOCK
    vs._SCORE_BLOCK = block
    try:
        indices, scores = top_k_cosine(matrix, norms, queries, k, exclude)
    finally:
        vs._SCORE_BLOCK = old
    assert indices.shape == scores.shape == (q, min(k, n))
    assert indices.dtype == np.int64 and scores.dtype == np.float32
    for r, expected in enumerate(reference_top_k(matrix, queries, k, exclude)):
        got = [int(i) for i in indices[r] if i >= 0]
        assert got == expected
        assert (indices[r, len(got):] == -1).all() and (scores[r, len(got):] == -np.inf).all()
        np.testing.assert_array_equal(scores[r, :len(got)], matrix[got] @ queries[r])


def test_top_k_candidate_compaction_on_rising_scores(monkeypatch):
    """Scores that rise with the row index defeat the running bar (every block beats it): candidates must be
    trimmed and compacted, and the result still equal a full sort."""
    import cpuformer.embeddings.vector_search as vs

    monkeypatch.setattr(vs, "_SCORE_BLOCK", 5000)
    n = 50000
    matrix = np.stack([np.ones(n), np.linspace(-1, 1, n)], axis=1).astype(np.float32)
    queries = np.array([[0, 1], [0, -1], [1, 0]], np.float32)
    norms = row_norms(matrix)
    indices, scores = top_k_cosine(matrix, norms, queries, 7)
    full = (queries @ matrix.T) / norms
    for r in range(3):
        expected = sorted(range(n), key=lambda i: (-full[r, i], i))[:7]
        assert indices[r].tolist() == expected
    np.testing.assert_array_equal(top_k_of_scores(full, 7)[0], indices)


def test_row_norms_match_numpy_and_zero_rows_get_one():
    rng = np.random.default_rng(3)
    m = rng.standard_normal((70000, 5)).astype(np.float32)
    m[12] = 0
    expected = np.linalg.norm(m, axis=1)
    expected[12] = 1
    np.testing.assert_array_equal(row_norms(m), expected)


def test_round_trip_through_keyed_vectors(pair, tmp_path):
    ours, _ = pair
    for binary in (False, True):
        ours.save_word2vec_format(tmp_path / "rt", binary=binary)
        back = KeyedVectors.load_word2vec_format(tmp_path / "rt", binary=binary)
        assert back.index_to_key == ours.index_to_key
        np.testing.assert_array_equal(back.vectors, ours.vectors)


@pytest.mark.parametrize("with_nan", [False, True])
def test_top_k_group_scan_with_ties_and_nan(monkeypatch, with_nan):
    """Blocks wide enough for the group-maximum scan (several 128-column groups), heavy ties, excluded rows and,
    optionally, NaN rows (which never qualify), against a full sort per query."""
    import cpuformer.embeddings.vector_search as vs

    monkeypatch.setattr(vs, "_SCORE_BLOCK", 6 * 1100)
    rng = np.random.default_rng(9)
    n, q, k = 7000, 6, 25
    matrix = rng.integers(-2, 3, (n, 4)).astype(np.float32)
    if with_nan:
        matrix[rng.integers(0, n, 40)] = np.nan
    norms = np.ones(n, np.float32)
    if with_nan:
        norms[np.isnan(matrix).any(axis=1)] = np.nan
    queries = rng.integers(-2, 3, (q, 4)).astype(np.float32)
    exclude = rng.integers(-1, n, (q, 5))
    indices, scores = top_k_cosine(matrix, norms, queries, k, exclude)
    full = (queries @ matrix.T) / norms
    for r in range(q):
        ok = [i for i in range(n) if not np.isnan(full[r, i]) and i not in set(exclude[r].tolist())]
        expected = sorted(ok, key=lambda i: (-full[r, i], i))[:k]
        assert indices[r].tolist() == expected
        np.testing.assert_array_equal(scores[r], full[r, expected])
