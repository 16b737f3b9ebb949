"""KeyedVectors' gensim-4 extras: cosmul, doesnt_match, rank, mean vectors, fvocab counts, analogy and word-pair
evaluation, each compared with gensim on the same vectors; the correlation statistics with scipy."""
import os
import re

import numpy as np
import pytest

gensim = pytest.importorskip("gensim")
scipy_stats = pytest.importorskip("scipy.stats")
scipy_special = pytest.importorskip("scipy.special")
from gensim.models import KeyedVectors as GKV  # noqa: E402

from cpuformer.embeddings import KeyedVectors  # noqa: E402
from cpuformer.embeddings import evaluation  # noqa: E402

# gensim's most_similar_cosmul calls its own deprecated init_sims
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`:DeprecationWarning")

DATA = os.path.join(os.path.dirname(gensim.__file__), "test", "test_data")
QUESTIONS = os.path.join(DATA, "questions-words.txt")
PAIRS_FILES = [os.path.join(DATA, "wordsim353.tsv"), os.path.join(DATA, "simlex999.txt")]
STAT_TOL = 1e-6  # model similarities are float32 in both; the statistics are float64


@pytest.fixture(scope="module")
def question_file(tmp_path_factory):
    """Every 8th question of each section of gensim's questions-words.txt (all sections kept)."""
    out = []
    count = 0
    with open(QUESTIONS, encoding="utf8") as f:
        for line in f:
            if line.startswith(": "):
                out.append(line)
                count = 0
            else:
                if count % 8 == 0:
                    out.append(line)
                count += 1
    path = tmp_path_factory.mktemp("qw") / "questions.txt"
    path.write_text("".join(out), encoding="utf8")
    return str(path)


@pytest.fixture(scope="module")
def analogy_vectors(tmp_path_factory):
    """Vectors in which many analogies hold (b = a + section offset + noise), with lower-case duplicates of some
    words placed later (so case_insensitive must pick the first spelling) and a few unrelated words; written
    once, loaded by both."""
    rng = np.random.default_rng(11)
    dim = 24
    vec = {}
    offsets = {}
    section = None
    with open(QUESTIONS, encoding="utf8") as f:
        for line in f:
            if line.startswith(": "):
                section = line.strip()
                offsets[section] = rng.standard_normal(dim)
                continue
            a, b, c, d = line.split()
            for x, y in ((a, b), (c, d)):
                if x not in vec:
                    vec[x] = rng.standard_normal(dim)
                if y not in vec:
                    vec[y] = vec[x] + offsets[section] + 0.6 * rng.standard_normal(dim)
    words = list(vec)
    extra = [w.lower() for w in words[::5] if w.lower() not in vec] + [f"filler{i}" for i in range(40)]
    matrix = np.concatenate([np.stack([vec[w] for w in words]), rng.standard_normal((len(extra), dim))])
    g = GKV(dim)
    g.add_vectors(words + extra, matrix.astype(np.float32))
    path = tmp_path_factory.mktemp("analogy") / "vectors.bin"
    g.save_word2vec_format(str(path), binary=True)
    return KeyedVectors.load_word2vec_format(path, binary=True), GKV.load_word2vec_format(str(path), binary=True)


@pytest.fixture(scope="module")
def euclidean():
    path = os.path.join(DATA, "euclidean_vectors.bin")
    return KeyedVectors.load_word2vec_format(path, binary=True), GKV.load_word2vec_format(path, binary=True)


ANALOGY_CASES = [dict(), dict(restrict_vocab=300), dict(case_insensitive=False), dict(dummy4unknown=True),
                 dict(restrict_vocab=150, dummy4unknown=True, case_insensitive=False)]


@pytest.mark.parametrize("kwargs", ANALOGY_CASES, ids=str)
def test_word_analogies_equal_gensims(analogy_vectors, question_file, kwargs):
    ours, theirs = analogy_vectors
    score, sections = ours.evaluate_word_analogies(question_file, **kwargs)
    expected_score, expected_sections = theirs.evaluate_word_analogies(question_file, **kwargs)
    assert score == expected_score
    assert sections == expected_sections
    if not kwargs:
        assert 0.2 < score < 0.95  # the fixture makes some analogies right and some wrong


@pytest.mark.parametrize("kwargs", ANALOGY_CASES[:4], ids=str)
def test_word_analogies_on_gensims_test_vectors(euclidean, kwargs):
    ours, theirs = euclidean
    assert ours.evaluate_word_analogies(QUESTIONS, **kwargs) == theirs.evaluate_word_analogies(QUESTIONS, **kwargs)


def test_word_analogies_without_a_section_header(tmp_path, euclidean):
    path = tmp_path / "bad.txt"
    path.write_text("a b c d\n", encoding="utf8")
    with pytest.raises(ValueError, match="Missing section header before line #0"):
        euclidean[0].evaluate_word_analogies(str(path))


@pytest.mark.parametrize("pairs", PAIRS_FILES, ids=os.path.basename)
@pytest.mark.parametrize("kwargs", [dict(), dict(dummy4unknown=True), dict(case_insensitive=False),
                                    dict(restrict_vocab=600)], ids=str)
def test_word_pairs_equal_gensims(euclidean, pairs, kwargs):
    ours, theirs = euclidean
    pearson, spearman, oov = ours.evaluate_word_pairs(pairs, **kwargs)
    g_pearson, g_spearman, g_oov = theirs.evaluate_word_pairs(pairs, **kwargs)
    assert oov == g_oov
    for got, expected in ((pearson, g_pearson), (spearman, g_spearman)):
        assert got[0] == pytest.approx(expected[0], abs=STAT_TOL)
        assert got[1] == pytest.approx(expected[1], rel=1e-5, abs=STAT_TOL)
        assert got.statistic == got[0] and got.pvalue == got[1]


def test_word_pairs_all_oov_is_an_error(euclidean, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment\nzzqx\tqqzx\t3.5\nnot a valid line\n", encoding="utf8")
    with pytest.raises(ValueError, match="No valid similarity judgements found in"):
        euclidean[0].evaluate_word_pairs(str(path))


@pytest.mark.parametrize("n, seed", [(2, 0), (3, 1), (10, 2), (57, 3), (400, 4)])
def test_correlations_match_scipy(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, n).astype(float)  # many ties for the ranks
    y = 0.4 * x + rng.standard_normal(n)
    for ours, theirs in ((evaluation.pearson(x, y), scipy_stats.pearsonr(x, y)),
                         (evaluation.spearman(x, y), scipy_stats.spearmanr(x, y))):
        assert ours[0] == pytest.approx(theirs[0], abs=1e-12, nan_ok=True)
        assert ours[1] == pytest.approx(theirs[1], rel=1e-9, abs=1e-15, nan_ok=True)


def test_betainc_matches_scipy():
    for a, b in [(0.5, 0.5), (1, 1), (2.5, 0.5), (30, 0.5), (170, 170), (0.7, 12)]:
        for x in [0, 1e-9, 0.01, 0.3, 0.5, 0.77, 0.999, 1]:
            assert evaluation.betainc(a, b, x) == pytest.approx(scipy_special.betainc(a, b, x), rel=1e-10, abs=1e-300)


def test_correlation_input_errors():
    with pytest.raises(ValueError, match="at least 2"):
        evaluation.pearson([1.0], [2.0])
    with pytest.raises(ValueError, match="equal length"):
        evaluation.spearman([1.0, 2.0], [1.0])
    assert np.isnan(evaluation.pearson([1, 1, 1], [1, 2, 3])[0])


# ---- similarity extras ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(800)] + ["naïve", "日本"]
    g = GKV(20)
    g.add_vectors(words, rng.standard_normal((len(words), 20)).astype(np.float32))
    ours = KeyedVectors(g.vectors.copy(), words)
    return ours, g


@pytest.mark.parametrize("kwargs", [dict(positive=["w1", "w2"], negative=["w3"]), dict(positive="naïve", topn=30),
                                    dict(positive=["w5"], negative=["w6", "w7"], topn=3),
                                    dict(positive=["w9", "日本"], topn=None)], ids=str)
def test_most_similar_cosmul_matches_gensim(pair, kwargs):
    ours, theirs = pair
    got, expected = ours.most_similar_cosmul(**kwargs), theirs.most_similar_cosmul(**kwargs)
    if kwargs.get("topn", 10) is None:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        return
    assert [w for w, _ in got] == [w for w, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)


def test_cosmul_edge_cases(pair):
    ours, theirs = pair
    vec = np.arange(20, dtype=np.float32)
    assert [w for w, _ in ours.most_similar_cosmul([vec], topn=5)] == [w for w, _ in theirs.most_similar_cosmul([vec], topn=5)]
    assert ours.most_similar_cosmul("w1", topn=0) == []
    with pytest.raises(ValueError, match="cannot compute similarity with no input"):
        ours.most_similar_cosmul(negative=["w1"])
    with pytest.raises(KeyError, match="'nope' not present"):
        ours.most_similar_cosmul(["nope"])


def test_doesnt_match_rank_closer_than_match_gensim(pair):
    ours, theirs = pair
    for words in (["w1", "w2", "w3", "w4"], ["naïve", "日本", "w40", "w41", "w42"]):
        assert ours.doesnt_match(words) == theirs.doesnt_match(words)
        got = ours.rank_by_centrality(words)
        expected = theirs.rank_by_centrality(words)
        assert [w for _, w in got] == [w for _, w in expected]
        np.testing.assert_allclose([s for s, _ in got], [s for s, _ in expected], rtol=1e-5)
    with pytest.warns(UserWarning, match="not present in the model"):
        assert ours.doesnt_match(["w1", "w2", "w3", "missing"]) == theirs.doesnt_match(["w1", "w2", "w3", "missing"])
    for a, b in [("w1", "w2"), ("naïve", "w700"), ("w3", "w3")]:
        assert ours.rank(a, b) == theirs.rank(a, b)
        assert ours.closer_than(a, b) == theirs.closer_than(a, b)
    np.testing.assert_allclose(ours.distances("w4"), theirs.distances("w4"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.distances("w4", ["w5", "日本"]), theirs.distances("w4", ["w5", "日本"]), atol=1e-6)
    assert ours.most_similar_to_given("w1", ["w2", "w3", "w4"]) == theirs.most_similar_to_given("w1", ["w2", "w3", "w4"])


@pytest.mark.parametrize("kwargs", [dict(keys=["w1", "w2"]), dict(keys=["w1", "w2", "missing"]),
                                    dict(keys=["w1", "w2"], weights=[0.3, -2.0], post_normalize=True),
                                    dict(keys=["w1", np.ones(20, np.float32)], pre_normalize=False)], ids=str)
def test_get_mean_vector_matches_gensim(pair, kwargs):
    ours, theirs = pair
    got, expected = ours.get_mean_vector(**kwargs), theirs.get_mean_vector(**kwargs)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_get_mean_vector_errors(pair):
    ours, _ = pair
    with pytest.raises(ValueError, match="cannot compute mean with no input"):
        ours.get_mean_vector([])
    with pytest.raises(ValueError, match="same number of elements"):
        ours.get_mean_vector(["w1"], weights=[1.0, 2.0])
    with pytest.raises(KeyError, match="'missing' not present in vocabulary"):
        ours.get_mean_vector(["w1", "missing"], ignore_missing=False)


# ---- fvocab counts -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_fvocab_counts_load_and_save_like_gensim(tmp_path, binary):
    rng = np.random.default_rng(2)
    words = ["b", "a", "ü", "c", "d"]
    g = GKV(4)
    g.add_vectors(words, rng.standard_normal((5, 4)).astype(np.float32))
    for w, c in zip(words, [5, 9, 9, 1, 7]):
        g.set_vecattr(w, "count", c)
    vec, voc = tmp_path / "v", tmp_path / "voc"
    g.save_word2vec_format(str(vec), fvocab=str(voc), binary=binary)  # sorted by count, as gensim does
    ours = KeyedVectors.load_word2vec_format(vec, fvocab=voc, binary=binary)
    theirs = GKV.load_word2vec_format(str(vec), fvocab=str(voc), binary=binary)
    assert ours.index_to_key == theirs.index_to_key
    assert [ours.get_vecattr(w, "count") for w in words] == [theirs.get_vecattr(w, "count") for w in words]
    ours.set_vecattr("c", "count", 100)
    theirs.set_vecattr("c", "count", 100)
    ours.save_word2vec_format(tmp_path / "o", fvocab=tmp_path / "ovoc", binary=binary)
    theirs.save_word2vec_format(str(tmp_path / "t"), fvocab=str(tmp_path / "tvoc"), binary=binary)
    assert (tmp_path / "o").read_bytes() == (tmp_path / "t").read_bytes()
    assert (tmp_path / "ovoc").read_bytes() == (tmp_path / "tvoc").read_bytes()


def test_counts_without_fvocab_are_made_up_like_gensims(tmp_path):
    g = GKV(3)
    g.add_vectors(["x", "y", "z", "x2"], np.eye(4, 3, dtype=np.float32))
    g.save_word2vec_format(str(tmp_path / "v"))
    for limit in (None, 3):
        ours = KeyedVectors.load_word2vec_format(tmp_path / "v", limit=limit)
        theirs = GKV.load_word2vec_format(str(tmp_path / "v"), limit=limit)
        assert [ours.get_vecattr(w, "count") for w in ours.index_to_key] == [
            theirs.get_vecattr(w, "count") for w in theirs.index_to_key]


def test_fvocab_errors(tmp_path):
    (tmp_path / "v").write_text("2 2\na 1 2\nb 3 4\n", encoding="utf8")
    (tmp_path / "voc").write_text("a 5\nb\n", encoding="utf8")
    with pytest.raises(ValueError, match=re.escape("voc: line 2: expected '<word> <count>', found 'b'")):
        KeyedVectors.load_word2vec_format(tmp_path / "v", fvocab=tmp_path / "voc")
    (tmp_path / "voc").write_text("a 5\n", encoding="utf8")
    with pytest.warns(UserWarning, match="vocabulary file is incomplete: 1 word"):
        kv = KeyedVectors.load_word2vec_format(tmp_path / "v", fvocab=tmp_path / "voc")
    assert kv.get_vecattr("a", "count") == 5 and kv.get_vecattr("b", "count") is None
    with pytest.raises(ValueError, match="cannot write fvocab: no count for 'b'"):
        kv.save_word2vec_format(tmp_path / "o", fvocab=tmp_path / "ovoc")
    with pytest.raises(ValueError, match="these vectors have no counts"):
        KeyedVectors(np.ones((1, 2)), ["q"]).save_word2vec_format(tmp_path / "o", fvocab=tmp_path / "ovoc")
