"""word2vec file reading and writing, checked against gensim 4 (which writes the fixtures)."""
import gzip
import re
import warnings

import numpy as np
import pytest

from helpers import HealthCheck, given, settings, st

gensim_models = pytest.importorskip("gensim.models")
GKV = gensim_models.KeyedVectors

from cpuformer.embeddings import (  # noqa: E402
    DuplicateWordWarning,
    KeyedVectors,
    Word2VecFormatError,
    Word2VecTruncatedError,
)
from cpuformer.embeddings import word2vec_format  # noqa: E402

UNICODE_WORDS = ["naïve", "日本語", "Ζεύς", "straße", "🙂", "a\u00a0b", "tab\tin", "#hash", "quo'te", "-1.5", ""]


def make_gensim(n=500, dim=16, seed=0, words=None):
    rng = np.random.default_rng(seed)
    if words is None:
        words = [f"w{i}" for i in range(n - len(UNICODE_WORDS))] + UNICODE_WORDS
    vectors = rng.standard_normal((len(words), dim)).astype(np.float32)
    vectors[3] = 0.0
    vectors[4, :3] = [1e-30, -0.0, 3e38]
    g = GKV(dim)
    g.add_vectors(words, vectors)
    return g


@pytest.fixture(scope="module")
def gensim_kv():
    return make_gensim()


@pytest.fixture(scope="module", params=[False, True], ids=["text", "binary"])
def written(request, gensim_kv, tmp_path_factory):
    binary = request.param
    path = tmp_path_factory.mktemp("w2v") / ("vectors.bin" if binary else "vectors.txt")
    gensim_kv.save_word2vec_format(str(path), binary=binary)
    return path, binary


def assert_same_as_gensim(ours, theirs):
    assert ours.index_to_key == theirs.index_to_key
    assert ours.key_to_index == theirs.key_to_index
    assert ours.vectors.dtype == np.float32
    assert ours.vectors.shape == theirs.vectors.shape
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)


def test_load_matches_gensim(written):
    path, binary = written
    ours = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert_same_as_gensim(ours, GKV.load_word2vec_format(str(path), binary=binary))
    assert ours.vectors.flags.c_contiguous


@pytest.mark.parametrize("limit", [None, 0, 1, 7, 500, 10_000])
def test_limit_matches_gensim(written, limit):
    path, binary = written
    ours = KeyedVectors.load_word2vec_format(path, binary=binary, limit=limit)
    assert_same_as_gensim(ours, GKV.load_word2vec_format(str(path), binary=binary, limit=limit))


def test_negative_limit_rejected(written):
    path, binary = written
    with pytest.raises(ValueError, match="limit must be None or >= 0, got -1"):
        KeyedVectors.load_word2vec_format(path, binary=binary, limit=-1)


def test_save_writes_gensims_bytes(written, tmp_path):
    path, binary = written
    ours = KeyedVectors.load_word2vec_format(path, binary=binary)
    out = tmp_path / "ours"
    ours.save_word2vec_format(out, binary=binary)
    assert out.read_bytes() == path.read_bytes()


def test_small_chunks_give_the_same_result(written, monkeypatch):
    path, binary = written
    whole = KeyedVectors.load_word2vec_format(path, binary=binary)
    monkeypatch.setattr(word2vec_format, "_TEXT_CHUNK_BYTES", 100)
    monkeypatch.setattr(word2vec_format, "_BINARY_CHUNK_BYTES", 7)
    chunked = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert chunked.index_to_key == whole.index_to_key
    np.testing.assert_array_equal(chunked.vectors, whole.vectors)


def test_slow_text_path_matches_fast_path(gensim_kv, tmp_path, monkeypatch):
    path = tmp_path / "v.txt"
    gensim_kv.save_word2vec_format(str(path))
    fast = KeyedVectors.load_word2vec_format(path)
    monkeypatch.setattr(word2vec_format, "_LOADTXT_IS_FAST", False)
    slow = KeyedVectors.load_word2vec_format(path)
    np.testing.assert_array_equal(slow.vectors, fast.vectors)


def test_gzip_file_matches_gensim(gensim_kv, tmp_path):
    path = tmp_path / "vectors.txt.gz"
    gensim_kv.save_word2vec_format(str(path), binary=False)
    assert_same_as_gensim(KeyedVectors.load_word2vec_format(path), GKV.load_word2vec_format(str(path)))
    out = tmp_path / "ours.bin.gz"
    KeyedVectors.load_word2vec_format(path).save_word2vec_format(out, binary=True)
    with gzip.open(out) as f:
        assert f.read(8) == b"500 16\n" + gensim_kv.index_to_key[0][:1].encode()


def test_reads_an_open_binary_stream(written):
    path, binary = written
    with open(path, "rb") as f:
        ours = KeyedVectors.load_word2vec_format(f, binary=binary)
        assert not f.closed
    assert_same_as_gensim(ours, GKV.load_word2vec_format(str(path), binary=binary))


def test_c_tool_style_files_match_gensim(tmp_path):
    """The original word2vec C tool writes "word v1 ... vd \\n" (trailing space) and, in binary, a newline
    after each vector; Windows tools write CRLF. gensim reads all three."""
    rng = np.random.default_rng(1)
    words = ["alpha", "béta", "γ", "d"]
    vecs = rng.standard_normal((4, 5)).astype(np.float32)
    text = "4 5\n" + "".join(w + " " + " ".join(str(x) for x in v) + " \r\n" for w, v in zip(words, vecs))
    (tmp_path / "c.txt").write_bytes(text.encode("utf8"))
    binary = b"4 5\n" + b"".join(w.encode() + b" " + v.tobytes() + b"\n" for w, v in zip(words, vecs))
    (tmp_path / "c.bin").write_bytes(binary)
    for name, is_binary in [("c.txt", False), ("c.bin", True)]:
        ours = KeyedVectors.load_word2vec_format(tmp_path / name, binary=is_binary)
        assert_same_as_gensim(ours, GKV.load_word2vec_format(str(tmp_path / name), binary=is_binary))
        assert ours.index_to_key == words
        np.testing.assert_array_equal(ours.vectors, vecs)


def test_empty_vocabulary(tmp_path):
    (tmp_path / "e.txt").write_bytes(b"0 7\n")
    kv = KeyedVectors.load_word2vec_format(tmp_path / "e.txt")
    assert kv.vectors.shape == (0, 7) and len(kv) == 0 and kv.vector_size == 7
    assert kv.most_similar_batch(np.zeros((2, 7), np.float32), topn=3) == [[], []]


def test_lines_after_the_announced_count_are_ignored_like_gensim(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"2 2\na 1 2\nb 3 4\nc 5 6\ngarbage\n")
    kv = KeyedVectors.load_word2vec_format(tmp_path / "x.txt")
    assert_same_as_gensim(kv, GKV.load_word2vec_format(str(tmp_path / "x.txt")))
    assert kv.index_to_key == ["a", "b"]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_duplicates_keep_first_like_gensim(tmp_path, binary):
    rng = np.random.default_rng(2)
    words = ["a", "b", "a", "c", "b", "d"]
    vecs = rng.standard_normal((6, 3)).astype(np.float32)
    path = tmp_path / "dup"
    if binary:
        path.write_bytes(b"6 3\n" + b"".join(w.encode() + b" " + v.tobytes() for w, v in zip(words, vecs)))
    else:
        path.write_text("6 3\n" + "".join(f"{w} {' '.join(str(x) for x in v)}\n" for w, v in zip(words, vecs)))
    where = "vector 3" if binary else "line 4"
    first = "vector 1" if binary else "line 2"
    with pytest.warns(DuplicateWordWarning, match=re.escape(
        f"2 duplicate word(s) ignored, keeping each word's first vector as gensim does; "
        f"the first duplicate is 'a' at {where} (first seen at {first})"
    )):
        ours = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert ours.index_to_key == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(ours.vectors, vecs[[0, 1, 3, 5]])
    theirs = GKV.load_word2vec_format(str(path), binary=binary)
    # gensim 4.4 keeps the first vector too, but leaves a None key and a zero row for each dropped duplicate.
    assert theirs.index_to_key == ours.index_to_key + [None, None]
    assert theirs.key_to_index == ours.key_to_index
    np.testing.assert_array_equal(theirs.vectors, np.vstack([ours.vectors, np.zeros((2, 3), np.float32)]))


def test_unicode_errors_replace_matches_gensim(tmp_path):
    path = tmp_path / "bad_utf8.txt"
    path.write_bytes(b"2 2\nok 1 2\nbad\xff\xfe 3 4\n")
    with pytest.raises(Word2VecFormatError, match=r"line 3: word b'bad\\xff\\xfe' is not valid utf8 .*"
                                                  r"pass unicode_errors='replace' or 'ignore'"):
        KeyedVectors.load_word2vec_format(path)
    for errors in ("replace", "ignore"):
        ours = KeyedVectors.load_word2vec_format(path, unicode_errors=errors)
        assert_same_as_gensim(ours, GKV.load_word2vec_format(str(path), unicode_errors=errors))


def test_latin1_encoding_matches_gensim(tmp_path):
    path = tmp_path / "latin1.bin"
    path.write_bytes(b"1 2\ncaf\xe9 " + np.array([1.5, -2], np.float32).tobytes())
    ours = KeyedVectors.load_word2vec_format(path, binary=True, encoding="latin1")
    assert ours.index_to_key == ["café"]
    assert_same_as_gensim(ours, GKV.load_word2vec_format(str(path), binary=True, encoding="latin1"))


# ---- malformed files: every error names the file and the place ------------------------------------------------

BAD_FILES = [
    (b"", False, "empty file; expected a header line '<vector count> <dimensions>'"),
    (b"abc def\n", False, "line 1: bad header 'abc def'; expected '<vector count> <dimensions>', two integers"),
    (b"10\n", True, "line 1: bad header '10'; expected '<vector count> <dimensions>', two integers"),
    (b"1 2 3\n", False, "line 1: bad header '1 2 3'; expected '<vector count> <dimensions>', two integers"),
    (b"-1 5\n", False, "line 1: bad header '-1 5'; the vector count must be >= 0 and the dimensions >= 1"),
    (b"3 0\n", False, "line 1: bad header '3 0'; the vector count must be >= 0 and the dimensions >= 1"),
    (b"2 3\na 1 2 3\nb 1 2\n", False, "line 3: expected 3 values after the word 'b', found 2"),
    (b"2 3\na 1 2 3\nb 1 2 3 4\n", False, "line 3: expected 3 values after the word 'b', found 4"),
    (b"3 3\na 1 2 3\nb 1 2 3\nc 1 2\n", False, "line 4: expected 3 values after the word 'c', found 2"),
    (b"2 3\na 1 2 3\nb\n", False, "line 3: expected 3 values after the word 'b', found 0"),
    (b"2 3\na 1 2 3\n\n", False, "line 3: expected 3 values after the word '', found 0"),
    (b"2 3\na 1 x 3\nb 1 2 3\n", False, "line 2: value 2 after the word 'a' is 'x', not a number"),
    (b"2 3\na 1 2 3\nb 1 2 3e\n", False, "line 3: value 3 after the word 'b' is '3e', not a number"),
    (b"3 2\na 1 2\nb 1 2\n", False, "the header says 3 vectors but the file ends after 2 (at line 4)"),
    (b"1 2\n", False, "the header says 1 vectors but the file ends after 0 (at line 2)"),
    (b"2 2\na " + b"\0" * 8, True,
     "truncated binary file: the header says 2 vectors of 2 float32 values (8 bytes each, after the word and a "
     "space) but the file ends after 1 complete vectors (byte offset 14, 0 bytes left)"),
    (b"2 2\na " + b"\0" * 8 + b"bb " + b"\0" * 5, True,
     "truncated binary file: the header says 2 vectors of 2 float32 values (8 bytes each, after the word and a "
     "space) but the file ends after 1 complete vectors (byte offset 14, 8 bytes left)"),
    (b"1 2\nnospace", True,
     "truncated binary file: the header says 1 vectors of 2 float32 values (8 bytes each, after the word and a "
     "space) but the file ends after 0 complete vectors (byte offset 4, 7 bytes left)"),
    (b"2 2\na 0.25 1.25\nb 2.5 3.5\n", True,
     "vector 2 (byte offset 14): word '5\\nb' contains a newline; is this a text word2vec file? (pass binary=False)"),
]


@pytest.mark.parametrize("content, binary, message", BAD_FILES)
def test_malformed_file_message(tmp_path, content, binary, message):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(Word2VecFormatError) as info:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_truncation_is_also_eoferror_like_gensim(tmp_path, binary):
    path = tmp_path / "short"
    path.write_bytes(b"5 2\na 1 2\n" if not binary else b"5 2\na " + b"\0" * 8)
    with pytest.raises(EOFError):
        GKV.load_word2vec_format(str(path), binary=binary)
    with pytest.raises(Word2VecTruncatedError) as info:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    assert isinstance(info.value, EOFError) and isinstance(info.value, ValueError)


def test_binary_file_read_as_text_hints_binary_true(tmp_path, gensim_kv):
    path = tmp_path / "v.bin"
    gensim_kv.save_word2vec_format(str(path), binary=True)
    with pytest.raises(Word2VecFormatError, match=r"line 2: .*; if this is a binary word2vec file, pass binary=True"):
        KeyedVectors.load_word2vec_format(path, binary=False, unicode_errors="replace")


def test_binary_word_without_terminator(tmp_path, monkeypatch):
    monkeypatch.setattr(word2vec_format, "_MAX_WORD_BYTES", 10)
    monkeypatch.setattr(word2vec_format, "_BINARY_CHUNK_BYTES", 4)
    path = tmp_path / "noword.bin"
    path.write_bytes(b"1 2\n" + b"x" * 40)
    with pytest.raises(Word2VecFormatError, match=r"vector 1 \(byte offset 4\): no space-terminated word within 10 "
                                                  r"bytes; is this a binary word2vec file\?"):
        KeyedVectors.load_word2vec_format(path, binary=True)


@pytest.mark.parametrize("word", ["two words", "new\nline"])
def test_save_rejects_unstorable_words(tmp_path, word):
    kv = KeyedVectors(np.ones((2, 3), np.float32), ["ok", word])
    path = tmp_path / "out.txt"
    with pytest.raises(ValueError, match=re.escape(f"cannot write the word {word!r}: word2vec files cannot hold "
                                                   f"words with spaces or newlines")):
        kv.save_word2vec_format(path)
    assert not path.exists() or path.read_bytes() == b""


# ---- property-based round trips ---------------------------------------------------------------------------------

words_strategy = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=" \n\r"), min_size=1, max_size=8)
    .filter(lambda w: w.strip() == w),  # gensim strips the line, so trailing whitespace cannot round trip
    min_size=1, max_size=20, unique=True,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=words_strategy, dim=st.integers(1, 9), seed=st.integers(0, 2**32 - 1), binary=st.booleans())
def test_round_trip_exact_and_equal_to_gensim(tmp_path, words, dim, seed, binary):
    rng = np.random.default_rng(seed)
    vecs = (rng.standard_normal((len(words), dim)) * 10.0 ** rng.integers(-40, 38, (len(words), dim)))
    vecs = vecs.astype(np.float32)
    path = tmp_path / f"rt_{binary}"
    KeyedVectors(vecs, words).save_word2vec_format(path, binary=binary)
    ours = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert ours.index_to_key == words
    np.testing.assert_array_equal(ours.vectors, vecs)
    assert_same_as_gensim(ours, GKV.load_word2vec_format(str(path), binary=binary))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.lists(st.sampled_from(["1", "-2.5", "x", "", "3e4", "nan"]), max_size=4), min_size=1,
                      max_size=5))
def test_arbitrary_text_either_loads_like_slow_parser_or_names_a_line(tmp_path, lines):
    dim = 3
    body = "".join(f"w{i} {' '.join(tokens)}\n" for i, tokens in enumerate(lines))
    path = tmp_path / "arb.txt"
    path.write_text(f"{len(lines)} {dim}\n{body}")
    try:
        kv = KeyedVectors.load_word2vec_format(path)
    except Word2VecFormatError as e:
        assert re.search(r": line \d+: ", str(e)), str(e)
        return
    expected = np.array([[float(t) for t in tokens if t] for tokens in lines], dtype=np.float32)
    np.testing.assert_array_equal(kv.vectors, expected)


def test_no_warnings_on_clean_load(written):
    path, binary = written
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KeyedVectors.load_word2vec_format(path, binary=binary)


@pytest.fixture(scope="module")
def glove_file(tmp_path_factory):
    """A GloVe-style text file: no '<count> <dims>' header line."""
    rng = np.random.default_rng(7)
    words = [f"g{i}" for i in range(300)] + ["naïve", "日本語", "straße", "🙂"]
    vectors = rng.standard_normal((len(words), 11)).astype(np.float32)
    path = tmp_path_factory.mktemp("glove") / "glove.txt"
    path.write_text("".join(w + " " + " ".join(f"{v:.6f}" for v in row) + "\n" for w, row in zip(words, vectors)),
                    encoding="utf8")
    return path


@pytest.mark.parametrize("limit", [None, 1, 50])
def test_no_header_glove_matches_gensim(glove_file, monkeypatch, limit):
    theirs = GKV.load_word2vec_format(str(glove_file), no_header=True, limit=limit)
    monkeypatch.setattr(word2vec_format, "_TEXT_CHUNK_BYTES", 100)  # several chunks, split mid-file
    ours = KeyedVectors.load_word2vec_format(glove_file, no_header=True, limit=limit)
    assert_same_as_gensim(ours, theirs)


def test_no_header_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(Word2VecFormatError, match=r"line 1: expected '<word> <v1> \.\.\. <vN>' \(no_header=True\)"):
        KeyedVectors.load_word2vec_format(empty, no_header=True)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(Word2VecFormatError, match=r"line 2: expected 3 values after the word 'b', found 2"):
        KeyedVectors.load_word2vec_format(ragged, no_header=True)
    with pytest.raises(ValueError, match=r"no_header=True is for text files"):
        KeyedVectors.load_word2vec_format(ragged, binary=True, no_header=True)


# ---- untrusted sizes and compressed input (issue 16) ---------------------------------------------------------------


def _peak_bytes(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


HUGE_HEADERS = [
    (b"1000000000000 4\na 1 2 3 4\nb 1 2 3 4\n", False),
    (b"1000000000000 4\na " + b"\0" * 16 + b"b " + b"\0" * 16, True),
    (b"2 1000000000000\na 1 2 3 4\n", False),
    (b"2 1000000000000\na " + b"\0" * 16, True),
]


@pytest.mark.parametrize("content, binary", HUGE_HEADERS, ids=["text-count", "binary-count", "text-dim", "binary-dim"])
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_header_counts_never_preallocate_beyond_the_file(tmp_path, content, binary, compress):
    """A header announcing 10^12 vectors (or dimensions) is a format error, found with memory bounded by the file
    (plain) or by a small first buffer (gz); main allocated from the header and raised MemoryError."""
    path = tmp_path / ("huge.gz" if compress else "huge")
    path.write_bytes(gzip.compress(content) if compress else content)
    errors = []

    def load():
        try:
            KeyedVectors.load_word2vec_format(path, binary=binary)
        except ValueError as e:
            errors.append(e)

    peak = _peak_bytes(load)
    assert len(errors) == 1 and str(errors[0]).startswith(f"{path}: ")
    assert peak < (80 << 20 if compress else 4 << 20), peak


def test_plain_file_allocates_exactly_the_rows_it_holds(tmp_path, gensim_kv):
    """A well-formed file is read into one buffer of exactly its size (no growth, no copy)."""
    path = tmp_path / "v.bin"
    gensim_kv.save_word2vec_format(str(path), binary=True)
    vectors, _, _ = word2vec_format.read_word2vec_format(path, binary=True)
    assert vectors.base is None and vectors.shape == gensim_kv.vectors.shape


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_gzip_input_grows_its_buffer_and_matches_gensim(tmp_path, gensim_kv, binary, monkeypatch):
    monkeypatch.setattr(word2vec_format, "_GROW_BYTES", 256)  # start tiny: many doublings
    path = tmp_path / "v.gz"
    gensim_kv.save_word2vec_format(str(path), binary=binary)
    ours = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert_same_as_gensim(ours, GKV.load_word2vec_format(str(path), binary=binary))


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_truncated_gzip_is_a_value_error_naming_the_file(tmp_path, gensim_kv, binary):
    """main raised gzip's bare EOFError ('Compressed file ended before the end-of-stream marker was reached')."""
    full = tmp_path / "full.gz"
    gensim_kv.save_word2vec_format(str(full), binary=binary)
    data = full.read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Word2VecTruncatedError, match=re.escape(f"{path}: the compressed data ends early")) as info:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    assert isinstance(info.value, ValueError) and isinstance(info.value, EOFError)
    path.write_bytes(data[:10] + bytes(b ^ 0x5A for b in data[10:40]) + data[40:])
    with pytest.raises(Word2VecFormatError, match=re.escape(f"{path}: ")):
        KeyedVectors.load_word2vec_format(path, binary=binary)
