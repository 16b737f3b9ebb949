"""KeyedVectors.save / load (cpuformer's own format, optionally memory-mapped) and the memory a loaded model holds."""
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cpuformer.embeddings import FastTextKeyedVectors, KeyedVectors


@pytest.fixture()
def kv():
    rng = np.random.default_rng(0)
    words = ["a", "b", "naïve", "日本", "with space", "new\nline", ""]
    return KeyedVectors(rng.standard_normal((len(words), 6)).astype(np.float32), words)


@pytest.mark.parametrize("mmap", [None, "r"])
def test_save_load_round_trip(tmp_path, kv, mmap):
    kv.set_vecattr("a", "count", 42)
    kv.save(tmp_path / "kv")
    back = KeyedVectors.load(tmp_path / "kv", mmap=mmap)
    assert type(back) is KeyedVectors
    assert back.index_to_key == kv.index_to_key and back.key_to_index == kv.key_to_index
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    assert back.get_vecattr("a", "count") == 42 and back.get_vecattr("b", "count") is None
    assert back.most_similar("a", topn=3) == kv.most_similar("a", topn=3)
    if mmap == "r":
        assert isinstance(back.vectors, np.memmap) and not back.vectors.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            back.vectors[0, 0] = 1.0
    assert os.path.exists(f"{tmp_path / 'kv'}.vectors.npy")


def test_made_up_counts_survive_a_round_trip(tmp_path, kv):
    plain = KeyedVectors(kv.vectors[:4], kv.index_to_key[:4])
    plain.save_word2vec_format(tmp_path / "w2v")
    loaded = KeyedVectors.load_word2vec_format(tmp_path / "w2v")
    loaded.save(tmp_path / "kv")
    back = KeyedVectors.load(tmp_path / "kv")
    assert [back.get_vecattr(w, "count") for w in back.index_to_key] == [4, 3, 2, 1]


def _write(tmp_path, meta=None, array=None):
    path = tmp_path / "kv"
    base = {"format": "cpuformer-keyed-vectors", "version": 1, "class": "KeyedVectors", "vector_size": 2,
            "keys": ["x", "y"], "counts": None}
    base.update(meta or {})
    path.write_text(json.dumps(base), encoding="utf8")
    np.save(f"{path}.vectors.npy", np.zeros((2, 2), np.float32) if array is None else array)
    return path


@pytest.mark.parametrize("meta, array, message", [
    ({"format": "other"}, None, 'not a cpuformer keyed-vectors file (no "format": "cpuformer-keyed-vectors")'),
    ({"version": 9}, None, "unsupported version 9; this cpuformer reads version 1"),
    ({"keys": ["x", 3]}, None, '"keys" must be a list of strings'),
    ({"keys": ["x", "x"]}, None, "duplicate key 'x'"),
    ({"vector_size": 0}, None, '"vector_size" must be an integer >= 1, got 0'),
    ({"counts": [1]}, None, '"counts" must be null or a list of 2 integers'),
    ({"class": "Word2Vec"}, None, "holds a 'Word2Vec', which is not a KeyedVectors"),
    ({}, np.zeros((3, 2), np.float32), "expected a C-ordered float32 array of shape (2, 2), got float32 (3, 2)"),
    ({}, np.zeros((2, 2), np.float64), "expected a C-ordered float32 array of shape (2, 2), got float64 (2, 2)"),
    ({}, np.array([{"pickled": 1}] * 4, dtype=object).reshape(2, 2), "not a valid .npy file"),
])
def test_load_errors(tmp_path, meta, array, message):
    path = _write(tmp_path, meta, array)
    with pytest.raises(ValueError, match=re.escape(message)):
        KeyedVectors.load(path)


def test_load_errors_for_files(tmp_path):
    path = _write(tmp_path)
    os.remove(f"{path}.vectors.npy")
    with pytest.raises(ValueError, match="the matrix file .* is missing"):
        KeyedVectors.load(path)
    path.write_text("{not json", encoding="utf8")
    with pytest.raises(ValueError, match="not a cpuformer keyed-vectors file \\(JSON error"):
        KeyedVectors.load(path)
    path = _write(tmp_path)
    with pytest.raises(ValueError, match="holds a 'KeyedVectors', which is not a FastTextKeyedVectors"):
        FastTextKeyedVectors.load(path)
    with pytest.raises(ValueError, match=re.escape("mmap must be None or 'r', got 'r+'")):
        KeyedVectors.load(path, mmap="r+")


_RSS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from cpuformer.embeddings import KeyedVectors

    def rss_bytes():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024

    before = rss_bytes()
    kv = KeyedVectors.load_word2vec_format(sys.argv[1], binary=True)
    kv.most_similar("w1", topn=10)
    kv.most_similar_batch(["w2", "w3"], topn=10)
    print(json.dumps({"grew": rss_bytes() - before, "vector_bytes": kv.vectors.nbytes}))
""")


def test_resident_memory_after_the_first_query_is_one_copy(tmp_path):
    """A 30000 x 400 binary file (46 MiB of vectors): after loading and the first queries the process holds at
    most 1.3x the vector bytes more than before loading (main held ~3.2x: raw + unit-norm + packed copies)."""
    n, dim = 30000, 400
    rng = np.random.default_rng(0)
    path = tmp_path / "vectors.bin"
    with open(path, "wb") as f:
        f.write(f"{n} {dim}\n".encode())
        vectors = rng.standard_normal((n, dim)).astype("<f4")
        f.write(b"".join(f"w{i} ".encode() + vectors[i].tobytes() for i in range(n)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path)], capture_output=True, text=True, env=env,
                         check=True, timeout=300)
    result = json.loads(out.stdout)
    assert result["vector_bytes"] == n * dim * 4
    assert result["grew"] <= 1.3 * result["vector_bytes"], result
