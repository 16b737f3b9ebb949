"""Bounded, seeded mutation fuzzing of the word2vec and fastText readers: whatever the bytes, a load either
succeeds or raises our own format error (a ValueError); never MemoryError, IndexError, struct.error, a crash or a
huge allocation (tracemalloc bounds the peak)."""
import gzip
import struct
import tracemalloc
import warnings

import numpy as np
import pytest

from cpuformer.embeddings import (
    FastTextFormatError,
    FastTextKeyedVectors,
    KeyedVectors,
    Word2VecFormatError,
    write_word2vec_format,
)

CASES_PER_FORMAT = 300
PEAK_LIMIT = 96 << 20  # bytes; the inputs are a few KiB, so this only catches allocations driven by the header


def word2vec_bytes(binary, tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(18)] + ["naïve", "日本"]
    path = tmp_path / ("seed.bin" if binary else "seed.txt")
    write_word2vec_format(path, rng.standard_normal((20, 5)).astype(np.float32), words, binary=binary)
    return path.read_bytes()


def fasttext_bytes():
    dim, bucket, words = 4, 30, [b"the", b"of", b"caf\xc3\xa9"]
    out = struct.pack("<2i", 793712314, 12) + struct.pack("<12i", dim, 5, 5, 5, 5, 1, 2, 2, bucket, 3, 6, 100)
    out += struct.pack("<d", 1e-4) + struct.pack("<3iqq", len(words), len(words), 0, 50, -1)
    for i, w in enumerate(words):
        out += w + b"\0" + struct.pack("<qb", 10 - i, 0)
    rng = np.random.default_rng(1)
    for rows in (len(words) + bucket, len(words)):
        out += struct.pack("<?qq", False, rows, dim) + rng.standard_normal(rows * dim).astype("<f4").tobytes()
    return out


def mutate(data, rng):
    data = bytearray(data)
    kind = rng.integers(0, 6)
    if kind == 0 and data:  # flip a few bytes
        for _ in range(rng.integers(1, 5)):
            data[rng.integers(0, len(data))] ^= int(rng.integers(1, 256))
    elif kind == 1:  # truncate
        del data[rng.integers(0, len(data) + 1):]
    elif kind == 2:  # insert random bytes
        at = rng.integers(0, len(data) + 1)
        data[at:at] = rng.integers(0, 256, rng.integers(1, 20), dtype=np.uint8).tobytes()
    elif kind == 3:  # a huge or negative number in the text header
        head = str(rng.choice(["1000000000000", "-7", "0", "99999999", "3"]))
        tail = str(rng.choice(["4", "1000000000000", "0", "5", "2147483648"]))
        line_end = data.find(b"\n")
        data[:line_end if line_end >= 0 else 0] = f"{head} {tail}".encode()
    elif kind == 4 and len(data) >= 8:  # a big little-endian integer somewhere (the binary headers)
        at = rng.integers(0, len(data) - 7)
        data[at:at + 8] = struct.pack("<q", int(rng.choice([2**31 - 1, 2**40, -1, 2**62, 10**6])))
    elif data:  # duplicate a slice
        a = rng.integers(0, len(data))
        b = min(len(data), a + rng.integers(1, 64))
        data[b:b] = data[a:b]
    return bytes(data)


def run_bounded(load):
    """load()'s exception (None if it succeeded); fails if its allocations peaked above PEAK_LIMIT."""
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate words and the like
            load()
        return None
    except Exception as e:  # noqa: BLE001 - the type is what the test checks
        return e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < PEAK_LIMIT, f"peak {peak} bytes"


def _write(path, data):
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_mutated_word2vec_files(tmp_path, binary):
    seed = word2vec_bytes(binary, tmp_path)
    rng = np.random.default_rng(2024 + binary)
    outcomes = {"ok": 0, "error": 0}
    for case in range(CASES_PER_FORMAT):
        data = mutate(mutate(seed, rng), rng) if case % 3 == 0 else mutate(seed, rng)
        target = _write(tmp_path / ("case.gz" if case % 10 == 0 else "case"), data)
        error = run_bounded(lambda: KeyedVectors.load_word2vec_format(target, binary=binary))
        if error is None:
            outcomes["ok"] += 1
            continue
        assert isinstance(error, Word2VecFormatError), (case, data[:60], repr(error))
        assert str(error).startswith(f"{target}: "), (case, str(error))
        outcomes["error"] += 1
    assert outcomes["ok"] > 10 and outcomes["error"] > 100, outcomes  # the mutations reach both outcomes


def test_mutated_fasttext_files(tmp_path):
    seed = fasttext_bytes()
    FastTextKeyedVectors.load_facebook_model(_write(tmp_path / "seed.bin", seed))  # the seed itself is valid
    rng = np.random.default_rng(77)
    outcomes = {"ok": 0, "error": 0}
    for case in range(CASES_PER_FORMAT):
        data = mutate(mutate(seed, rng), rng) if case % 3 == 0 else mutate(seed, rng)
        target = _write(tmp_path / ("case.bin.gz" if case % 10 == 0 else "case.bin"), data)
        error = run_bounded(lambda: FastTextKeyedVectors.load_facebook_model(target))
        if error is None:
            outcomes["ok"] += 1
            continue
        assert isinstance(error, FastTextFormatError), (case, repr(error))
        assert str(error).startswith(f"{target}: "), (case, str(error))
        outcomes["error"] += 1
    assert outcomes["ok"] > 10 and outcomes["error"] > 100, outcomes
