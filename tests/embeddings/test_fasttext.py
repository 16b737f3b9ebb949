"""FastTextKeyedVectors against gensim 4 on the .bin files gensim ships and on one trained here with gensim."""
import gzip
import os
import re
import struct

import numpy as np
import pytest

gensim = pytest.importorskip("gensim")
from gensim.models import fasttext as gft  # noqa: E402
from gensim.models.fasttext_inner import compute_ngrams_bytes, ft_hash_bytes as gensim_hash  # noqa: E402

import cpuformer  # noqa: E402
from cpuformer.embeddings import FastTextFormatError, FastTextKeyedVectors, KeyedVectors  # noqa: E402
from cpuformer.embeddings import fasttext_vectors  # noqa: E402

DATA = os.path.join(os.path.dirname(gensim.__file__), "test", "test_data")
# old format (no magic): lee_fasttext, cp852 (words that are not UTF-8), non_ascii; new format: the rest
SHIPPED = ["lee_fasttext.bin", "lee_fasttext_new.bin", "crime-and-punishment.bin", "cp852_fasttext.bin",
           "non_ascii_fasttext.bin", "toy-model.bin", "toy-model-pretrained.bin"]
OOV_WORDS = ["xyzzy", "naïveté", "日本語のテキスト", "a", "", "ab", "pneumonoultramicroscopic", "Zürich-Straße",
             "🙂🙃", "\u00e9\u0301", "x" * 60]
TOL = 1e-6


def shipped(name):
    return os.path.join(DATA, name)


@pytest.fixture(scope="module")
def trained_bin(tmp_path_factory):
    """A skipgram model trained by gensim on a small corpus (with non-ASCII words), saved in Facebook's format."""
    with open(shipped("lee_background.cor"), encoding="utf8") as f:
        sentences = [line.split() for line in f.read().splitlines()[:150]]
    sentences += [["naïve", "café", "日本", "Ζεύς", "straße"] * 3] * 5
    model = gft.FastText(vector_size=12, window=3, min_count=2, sg=1, min_n=2, max_n=5, bucket=3001, epochs=2,
                         workers=1, seed=7)
    model.build_vocab(corpus_iterable=sentences)
    model.train(corpus_iterable=sentences, total_examples=len(sentences), epochs=2)
    path = tmp_path_factory.mktemp("ft") / "trained.bin"
    gft.save_facebook_model(model, str(path))
    return str(path)


def all_files(trained_bin):
    return [shipped(n) for n in SHIPPED] + [trained_bin]


@pytest.fixture(scope="module", params=SHIPPED + ["trained"])
def pair(request, trained_bin):
    path = trained_bin if request.param == "trained" else shipped(request.param)
    return FastTextKeyedVectors.load_facebook_vectors(path), gft.load_facebook_vectors(path), path


# ---- hashing and n-grams -------------------------------------------------------------------------------------------


def test_hash_matches_gensim_on_every_byte_value():
    rng = np.random.default_rng(0)
    samples = [bytes([b]) for b in range(256)] + [rng.integers(0, 256, n, dtype=np.uint8).tobytes()
                                                  for n in rng.integers(0, 40, 500)]
    for data in samples:
        assert fasttext_vectors.ft_hash_bytes(data) == gensim_hash(data), data


@pytest.mark.parametrize("minn, maxn", [(3, 6), (1, 1), (2, 4), (0, 3), (5, 2), (3, 0)])
def test_ngrams_match_gensim(minn, maxn):
    for word in OOV_WORDS + ["the", "日本", "a\u0301b"]:
        assert fasttext_vectors.ngrams_bytes(word, minn, maxn) == compute_ngrams_bytes(word, minn, maxn)


def test_batched_buckets_equal_one_word_at_a_time():
    words = OOV_WORDS + [f"w{i}ü" for i in range(50)]
    offsets, buckets = fasttext_vectors._batch_buckets(words, 3, 6, 2000003)
    for i, w in enumerate(words):
        assert buckets[offsets[i]:offsets[i + 1]].tolist() == fasttext_vectors.ngram_buckets(w, 3, 6, 2000003)


# ---- parity with gensim --------------------------------------------------------------------------------------------


def test_vocabulary_and_word_vectors_match_gensim(pair):
    ours, theirs, _ = pair
    assert isinstance(ours, KeyedVectors)
    assert ours.index_to_key == theirs.index_to_key
    assert (ours.min_n, ours.max_n, ours.bucket) == (theirs.min_n, theirs.max_n, theirs.bucket)
    assert np.abs(ours.vectors - theirs.vectors).max() <= TOL
    assert np.abs(ours.vectors_ngrams - theirs.vectors_ngrams).max() <= TOL
    for word in theirs.index_to_key[:50]:
        assert ours.get_vecattr(word, "count") == theirs.get_vecattr(word, "count")


def test_oov_vectors_match_gensim(pair):
    ours, theirs, _ = pair
    words = OOV_WORDS + [w + "s" for w in theirs.index_to_key[:30]] + [w[:-1] for w in theirs.index_to_key[:30]]
    for word in words:
        for norm in (False, True):
            if norm and not np.any(theirs.get_vector(word)):
                continue  # gensim divides a zero vector by its zero norm
            got, expected = ours.get_vector(word, norm=norm), theirs.get_vector(word, norm=norm)
            assert got.dtype == np.float32 and got.shape == expected.shape
            assert np.abs(got - expected).max() <= TOL, (word, norm)
        assert word in ours
    assert ours["xyzzy"].shape == (ours.vector_size,)


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::DeprecationWarning")  # gensim: a zero row, init_sims
def test_most_similar_with_oov_queries_matches_gensim(pair):
    ours, theirs, _ = pair
    for kwargs in [dict(positive="xyzzy"), dict(positive=[theirs.index_to_key[3], "unseenword"], negative=["qq"]),
                   dict(positive=theirs.index_to_key[10], topn=7)]:
        got, expected = ours.most_similar(**kwargs), theirs.most_similar(**kwargs)
        assert [w for w, _ in got] == [w for w, _ in expected]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)
    a, b = theirs.index_to_key[5], "notaword"
    assert ours.similarity(a, b) == pytest.approx(float(theirs.similarity(a, b)), abs=1e-5)
    got = ours.most_similar_cosmul(positive=[a, "unseen"], negative=["zzz"], topn=5)
    expected = theirs.most_similar_cosmul(positive=[a, "unseen"], negative=["zzz"], topn=5)
    assert [w for w, _ in got] == [w for w, _ in expected]
    sentence = [a, "unseen", theirs.index_to_key[7]]
    assert np.abs(ours.get_sentence_vector(sentence) - theirs.get_sentence_vector(sentence)).max() <= TOL
    words = theirs.index_to_key[:6] + ["oovword"]
    assert ours.doesnt_match(words) == theirs.doesnt_match(words)


def test_load_facebook_model_matches_gensim(trained_bin):
    ours = FastTextKeyedVectors.load_facebook_model(trained_bin)
    theirs = gft.load_facebook_model(trained_bin)
    assert (ours.vector_size, ours.window, ours.negative, ours.sg, ours.hs, ours.bucket, ours.min_n, ours.max_n) == (
        theirs.vector_size, theirs.window, theirs.negative, theirs.sg, theirs.hs, theirs.wv.bucket,
        theirs.wv.min_n, theirs.wv.max_n)
    assert ours.corpus_total_words == theirs.corpus_total_words
    np.testing.assert_array_equal(ours.syn1neg, theirs.syn1neg)
    np.testing.assert_array_equal(ours.wv.vectors, theirs.wv.vectors)
    assert "skipgram" in repr(ours)
    assert cpuformer.embeddings.load_facebook_vectors is not None


def test_gzip_file_loads_the_same(tmp_path, trained_bin):
    gz = tmp_path / "model.bin.gz"
    with open(trained_bin, "rb") as f:
        gz.write_bytes(gzip.compress(f.read()))
    a = FastTextKeyedVectors.load_facebook_vectors(gz)
    b = FastTextKeyedVectors.load_facebook_vectors(trained_bin)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.vectors_ngrams, b.vectors_ngrams)
    with open(trained_bin, "rb") as f:  # an open binary stream works too
        np.testing.assert_array_equal(FastTextKeyedVectors.load_facebook_vectors(f).vectors, b.vectors)


def test_native_save_load_and_mmap(tmp_path, trained_bin):
    ours = FastTextKeyedVectors.load_facebook_vectors(trained_bin)
    path = tmp_path / "ft.kv"
    ours.save(path)
    for mmap in (None, "r"):
        back = FastTextKeyedVectors.load(path, mmap=mmap)
        assert isinstance(back, FastTextKeyedVectors)
        assert back.index_to_key == ours.index_to_key
        np.testing.assert_array_equal(back.vectors, ours.vectors)
        np.testing.assert_array_equal(back["unseen-word"], ours["unseen-word"])
        assert back.most_similar("zebra", topn=5) == ours.most_similar("zebra", topn=5)
        assert isinstance(back.vectors, np.memmap) == (mmap == "r")
    assert isinstance(KeyedVectors.load(path), FastTextKeyedVectors)  # a FastTextKeyedVectors is a KeyedVectors


# ---- malformed files -----------------------------------------------------------------------------------------------


def test_every_truncation_is_a_value_error(trained_bin, tmp_path):
    data = open(shipped("toy-model.bin"), "rb").read()
    path = tmp_path / "cut.bin"
    messages = set()
    for cut in list(range(0, 200)) + list(range(200, len(data), 37)) + [len(data) - 1]:
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError) as info:
            FastTextKeyedVectors.load_facebook_model(path)
        assert str(path) in str(info.value)
        messages.add(re.sub(r"\d+", "N", str(info.value).split(": ", 1)[1])[:40])
    assert any(m.startswith("truncated file") for m in messages)


def new_format_header(dim=5, bucket=100, minn=3, maxn=6, model=2, loss=2, version=12):
    return struct.pack("<2i", 793712314, version) + struct.pack("<12i", dim, 5, 5, 5, 5, 1, loss, model, bucket,
                                                                minn, maxn, 100) + struct.pack("<d", 1e-4)


def vocab(words, nwords=None, nlabels=0, prune=-1, types=None):
    out = struct.pack("<3iqq", len(words), len(words) if nwords is None else nwords, nlabels, 99, prune)
    for i, w in enumerate(words):
        out += w + b"\0" + struct.pack("<qb", 10 - i, 0 if types is None else types[i])
    return out


def matrix(rows, cols, quant=False, values=True):
    out = struct.pack("<?qq", quant, rows, cols)
    return out + (np.arange(rows * cols, dtype="<f4").tobytes() if values else b"")


@pytest.mark.parametrize("data, message", [
    (b"", "truncated file: it ends in the header (byte offset 0: 8 bytes needed, 0 left)"),
    (b"\x01\x02\x03\x04" * 20, "not a fastText .bin model: bad magic 0x04030201"),
    (b"300 5\nword 1 2 3 4 5\n" * 4, "it starts with digits: if it is a word2vec file"),
    (new_format_header(version=13) + b"\0" * 40, "bad header: fastText file format version 13"),
    (new_format_header(dim=0) + b"\0" * 40, "bad header: dim = 0 (expected 1 to 1048576)"),
    (new_format_header(model=9) + b"\0" * 40, "bad header: model = 9"),
    (new_format_header(loss=0) + b"\0" * 40, "bad header: loss = 0"),
    (new_format_header(bucket=-5) + b"\0" * 40, "bad header: bucket = -5"),
    (new_format_header() + vocab([b"a"], nwords=3), "bad vocabulary header: size 1, nwords 3, nlabels 0"),
    (new_format_header() + vocab([b"a", b"__label__x"], nwords=1, nlabels=1), "a supervised fastText model"),
    (new_format_header() + struct.pack("<3iqq", 2_000_000_000, 2_000_000_000, 0, 1, -1) + b"a\0",
     "bad vocabulary header: 2000000000 words need at least 20000000000 bytes"),
    (new_format_header() + vocab([b"a", b"b"], types=[0, 7]), "entry type 7 (expected 0, a word)"),
    (new_format_header() + vocab([b"a"], prune=-2), "pruneidx_size -2"),
    (new_format_header() + vocab([b"a"], prune=10**15), "pruneidx_size 1000000000000000 needs"),
    (new_format_header() + vocab([b"a"]) + matrix(101, 5, quant=True), "quantized (a .ftz model)"),
    (new_format_header() + vocab([b"a"]) + matrix(7, 5), "bad input matrix header: shape (7, 5), expected (101, 5)"),
    (new_format_header() + vocab([b"a"]) + matrix(101, 5, values=False),
     "truncated file: the input matrix needs 2020 bytes of float32"),
    (new_format_header() + vocab([b"a", b"a"]) + matrix(102, 5) + matrix(2, 5), "the vocabulary holds 'a' twice"),
    (new_format_header() + vocab([b"a"]) + matrix(101, 5) + matrix(1, 5) + b"x",
     "unexpected bytes after the output matrix"),
], ids=lambda v: v[:30] if isinstance(v, str) else "data")
def test_malformed_file_message(tmp_path, data, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    with pytest.raises(FastTextFormatError, match=re.escape(message)) as info:
        FastTextKeyedVectors.load_facebook_model(path)
    assert str(info.value).startswith(str(path) + ": ")
    assert isinstance(info.value, ValueError)


def test_a_well_formed_handmade_file_loads(tmp_path):
    """The handmade layout above is the real one: with consistent sizes it loads (and gensim agrees)."""
    path = tmp_path / "ok.bin"
    path.write_bytes(new_format_header() + vocab([b"hello", b"w\xc3\xb6rld"]) + matrix(102, 5) + matrix(2, 5))
    ours = FastTextKeyedVectors.load_facebook_model(path).wv
    theirs = gft.load_facebook_vectors(str(path))
    assert ours.index_to_key == theirs.index_to_key == ["hello", "wörld"]
    np.testing.assert_allclose(ours.vectors, theirs.vectors, atol=TOL)
    np.testing.assert_allclose(ours["unknown"], theirs["unknown"], atol=TOL)


def test_huge_matrix_in_a_gzip_file_is_a_format_error_not_an_allocation(tmp_path):
    """Compressed input has no known size: the reader allocates only what arrives, so a header that claims
    2^40 bytes of vectors is a truncation error."""
    data = new_format_header(dim=1 << 20, bucket=1 << 18) + vocab([b"a"]) + struct.pack(
        "<?qq", False, (1 << 18) + 1, 1 << 20) + b"\0" * 1000
    path = tmp_path / "huge.bin.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(FastTextFormatError, match="truncated file: it ends in the input matrix"):
        FastTextKeyedVectors.load_facebook_vectors(path)
    plain = tmp_path / "huge.bin"
    plain.write_bytes(data)
    with pytest.raises(FastTextFormatError, match="the input matrix needs 1099515822080 bytes of float32"):
        FastTextKeyedVectors.load_facebook_vectors(plain)


def test_truncated_gzip_is_a_format_error(tmp_path, trained_bin):
    data = gzip.compress(open(trained_bin, "rb").read())
    path = tmp_path / "cut.bin.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FastTextFormatError, match="compressed data ends early"):
        FastTextKeyedVectors.load_facebook_vectors(path)
    path.write_bytes(b"\x1f\x8b" + b"\xff" * 100)
    with pytest.raises(FastTextFormatError, match="cannot decompress"):
        FastTextKeyedVectors.load_facebook_vectors(path)


def test_word2vec_loader_names_fasttext_files(trained_bin):
    with pytest.raises(ValueError, match=re.escape(
            "this is a fastText .bin model (Facebook's binary format), not a word2vec file; load it with "
            "cpuformer.FastTextKeyedVectors.load_facebook_vectors(path)")):
        KeyedVectors.load_word2vec_format(trained_bin, binary=True)
    with pytest.raises(ValueError, match="fastText .bin model"):
        KeyedVectors.load_word2vec_format(trained_bin)
    # old-format files have no magic: the bad-header error hints at the fastText loader
    with pytest.raises(ValueError, match=r"starts with binary data: if it is a fastText \.bin model"):
        KeyedVectors.load_word2vec_format(shipped("lee_fasttext.bin"))


def test_no_ngrams_means_no_oov_vectors(tmp_path):
    path = tmp_path / "nobucket.bin"
    path.write_bytes(new_format_header(bucket=0) + vocab([b"a", b"b"]) + matrix(2, 5) + matrix(2, 5))
    kv = FastTextKeyedVectors.load_facebook_vectors(path)
    theirs = gft.load_facebook_vectors(str(path))
    np.testing.assert_array_equal(kv.vectors, theirs.vectors)
    assert "zz" not in kv and "a" in kv
    with pytest.raises(KeyError, match="no n-grams"):
        kv["zz"]


def test_constructor_from_arrays(pair):
    ours, theirs, _ = pair
    built = FastTextKeyedVectors(ours.vectors, ours.index_to_key, ours.vectors_ngrams, ours.min_n, ours.max_n)
    np.testing.assert_array_equal(built["some-unseen-word"], theirs["some-unseen-word"])
    with pytest.raises(ValueError, match=re.escape("vectors_ngrams must have shape (bucket, 3), got (4, 2)")):
        FastTextKeyedVectors(np.ones((1, 3)), ["a"], np.ones((4, 2)))
    with pytest.raises(ValueError, match="min_n must be an integer >= 0, got -1"):
        FastTextKeyedVectors(np.ones((1, 3)), ["a"], np.ones((4, 3)), min_n=-1)
