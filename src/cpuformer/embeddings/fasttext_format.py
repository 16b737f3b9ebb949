"""Read Facebook fastText's binary model files (.bin), unsupervised (cbow / skipgram) models.

Layout (little-endian; fastText's FastText::saveModel, Args::save, Dictionary::save, DenseMatrix::save):

    int32 magic 793712314, int32 version (<= 12)     -- absent in old files, which start with dim, ws
    int32 dim, ws, epoch, min_count, neg, word_ngrams, loss, model, bucket, minn, maxn, lr_update_rate;
    float64 t                                          -- old files: the same from epoch on
    int32 size, nwords, nlabels; int64 ntokens; int64 pruneidx_size (new files only)
    size x { word bytes, b"\\0", int64 count, int8 type (0 word, 1 label) }
    pruneidx_size x { int32, int32 }                   -- new files only
    bool quant_input (new files only); int64 rows (nwords + bucket), cols (dim); rows x cols float32
    then the output matrix in the same form (read only for the full model)

Every count and size is checked against the bytes the file still holds before anything is allocated, so a
corrupt header gives a ValueError naming the field, never a huge allocation.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, List, Optional

import numpy as np

from .word2vec_format import FASTTEXT_MAGIC_BYTES, PathOrFile, _bytes_left, _open

__all__ = ["FastTextFormatError", "FastTextFile", "read_facebook_bin"]

FASTTEXT_MAGIC = 793712314
FASTTEXT_VERSION = 12
_MAX_WORD_BYTES = 1 << 16   # fastText words are whitespace-free tokens; longer means a corrupt file
_CHUNK_BYTES = 1 << 20
_MAX_DIM = 1 << 20
_GROWING_READ_BYTES = 1 << 26  # matrices above this are read in growing pieces when the size is unknown
_MODEL_NAMES = {1: "cbow", 2: "skipgram", 3: "supervised"}
_LOSS_NAMES = {1: "hs", 2: "ns", 3: "softmax", 4: "ova"}
_HEADER_FIELDS = ["epoch", "min_count", "neg", "word_ngrams", "loss", "model", "bucket", "minn", "maxn",
                  "lr_update_rate"]


class FastTextFormatError(ValueError):
    """The file is not a well-formed fastText .bin model; the message names the file and what is wrong."""


@dataclass
class FastTextFile:
    """Everything a fastText .bin holds that word vectors need (the output matrix only if asked for)."""

    dim: int
    ws: int
    epoch: int
    min_count: int
    neg: int
    word_ngrams: int
    loss: int
    model: int
    bucket: int
    minn: int
    maxn: int
    lr_update_rate: int
    t: float
    version: Optional[int]          # None for old files without magic and version
    words: List[str]
    counts: List[int]
    ntokens: int
    input_matrix: np.ndarray        # (nwords + bucket, dim) float32: word rows, then n-gram bucket rows
    output_matrix: Optional[np.ndarray] = field(default=None)


class _Reader:
    """Buffered reads that know the file offset and, for plain files, how many bytes remain."""

    def __init__(self, f: BinaryIO, name: str):
        self.f, self.name = f, name
        self.left = _bytes_left(f)  # None: unknown (compressed input, pipes)
        self.buf = b""
        self.pos = 0
        self.offset = 0  # file offset of buf[0]

    def error(self, message: str) -> FastTextFormatError:
        return FastTextFormatError(f"{self.name}: {message}")

    def truncated(self, what: str, need: int, have: int) -> FastTextFormatError:
        return self.error(
            f"truncated file: it ends in the {what} (byte offset {self.offset + self.pos}: {need} bytes needed, "
            f"{have} left)"
        )

    def _fill(self, n: int) -> bool:
        """Make at least n unread bytes available in buf; False at the end of the file."""
        while len(self.buf) - self.pos < n:
            more = self.f.read(max(_CHUNK_BYTES, n - (len(self.buf) - self.pos)))
            if not more:
                return False
            self.offset += self.pos
            self.buf = self.buf[self.pos:] + more
            self.pos = 0
        return True

    def _fill_chunks(self, n: int) -> bool:
        """_fill for large n: gather reads in a list and join once (no quadratic re-concatenation)."""
        parts = [self.buf[self.pos:]]
        have = len(parts[0])
        while have < n:
            more = self.f.read(min(n - have, 1 << 26))
            if not more:
                break
            parts.append(more)
            have += len(more)
        self.offset += self.pos
        self.buf, self.pos = b"".join(parts), 0
        return have >= n

    def take(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise self.truncated(what, n, len(self.buf) - self.pos)
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def remaining_at_least(self, n: int) -> Optional[bool]:
        """Whether the file still holds n bytes (None if the size is unknown)."""
        if self.left is None:
            return None
        return self.left - (self.offset + self.pos) >= n

    def bytes_remaining(self) -> Optional[int]:
        return None if self.left is None else self.left - (self.offset + self.pos)

    def word(self, what: str) -> bytes:
        """Bytes up to the next b"\\0" (consumed, not returned)."""
        while True:
            end = self.buf.find(b"\0", self.pos)
            if end >= 0:
                out = self.buf[self.pos:end]
                self.pos = end + 1
                return out
            if len(self.buf) - self.pos > _MAX_WORD_BYTES:
                raise self.error(f"{what}: no b'\\0' terminator within {_MAX_WORD_BYTES} bytes (byte offset "
                                 f"{self.offset + self.pos}); corrupt vocabulary")
            if not self._fill(len(self.buf) - self.pos + 1):
                raise self.truncated(what, 1, len(self.buf) - self.pos)

    def floats(self, count: int, what: str) -> np.ndarray:
        """count little-endian float32 values into a new array, reading in chunks (no intermediate copy of the
        whole matrix)."""
        n = 4 * count
        if self.left is None and n > _GROWING_READ_BYTES:  # unknown size: allocate only what really arrives
            data = self.take(n, what) if self._fill_chunks(n) else None
            if data is None:
                raise self.truncated(what, n, len(self.buf) - self.pos)
            return np.frombuffer(data, dtype="<f4").astype(np.float32)
        out = np.empty(count, dtype="<f4")
        raw = memoryview(out.view(np.uint8))
        have = min(n, len(self.buf) - self.pos)
        raw[:have] = self.buf[self.pos:self.pos + have]
        self.pos += have
        if have == n:  # all of it was buffered; the rest of the buffer is still to be read
            return out.astype(np.float32, copy=False)
        done = have
        while done < n:
            got = self.f.readinto(raw[done:min(n, done + (1 << 26))])  # type: ignore[attr-defined]
            if not got:
                raise self.error(
                    f"truncated file: it ends in the {what} (byte offset {self.offset + self.pos + done}: "
                    f"{n - done} more bytes needed)"
                )
            done += got
        self.offset += self.pos + (done - have)
        self.buf, self.pos = b"", 0
        return out.astype(np.float32, copy=False)

    def at_end(self) -> bool:
        return not self._fill(1)


def _check_header(h: dict) -> Optional[str]:
    """What is wrong with a header's values, or None."""
    if not 1 <= h["dim"] <= _MAX_DIM:
        return f"dim = {h['dim']} (expected 1 to {_MAX_DIM})"
    if h["model"] not in _MODEL_NAMES:
        return f"model = {h['model']} (expected 1 cbow, 2 skipgram or 3 supervised)"
    if h["loss"] not in _LOSS_NAMES:
        return f"loss = {h['loss']} (expected 1 hs, 2 ns, 3 softmax or 4 ova)"
    for name in ("bucket", "minn", "maxn", "ws", "epoch", "neg"):
        if h[name] < 0:
            return f"{name} = {h[name]} (expected >= 0)"
    return None


def _read_header(r: _Reader) -> dict:
    first = r.take(8, "header")
    magic, version = struct.unpack("<2i", first)
    h: dict = {}
    if first[:4] == FASTTEXT_MAGIC_BYTES:
        if not 1 <= version <= FASTTEXT_VERSION:
            raise r.error(f"bad header: fastText file format version {version}; this reader knows versions "
                          f"up to {FASTTEXT_VERSION}")
        h["version"] = version
        h["dim"], h["ws"] = r.unpack("2i", "header")
    else:
        h["version"] = None
        h["dim"], h["ws"] = magic, version
    values = r.unpack(f"{len(_HEADER_FIELDS)}i", "header")
    h.update(zip(_HEADER_FIELDS, values))
    (h["t"],) = r.unpack("d", "header")
    problem = _check_header(h)
    if problem is None:
        return h
    if h["version"] is not None:
        raise r.error(f"bad header: {problem}")
    hint = ""
    if first[:1].isdigit():
        hint = "; it starts with digits: if it is a word2vec file, use KeyedVectors.load_word2vec_format"
    raise r.error(
        f"not a fastText .bin model: bad magic {magic & 0xFFFFFFFF:#010x} (expected {FASTTEXT_MAGIC:#010x}), "
        f"and read as an old file without magic its header is invalid: {problem}{hint}"
    )


def _read_vocab(r: _Reader, new_format: bool, encoding: str):
    size, nwords, nlabels = r.unpack("3i", "vocabulary header")
    (ntokens,) = r.unpack("q", "vocabulary header")
    if size < 0 or nwords < 0 or nlabels < 0 or nwords + nlabels != size:
        raise r.error(f"bad vocabulary header: size {size}, nwords {nwords}, nlabels {nlabels} (expected "
                      f"size = nwords + nlabels, all >= 0)")
    if nlabels > 0:
        raise r.error(f"a supervised fastText model ({nlabels} labels); only unsupervised (cbow / skipgram) "
                      f"models hold word vectors")
    prune_size = -1
    if new_format:
        (prune_size,) = r.unpack("q", "vocabulary header")
        if prune_size < -1:
            raise r.error(f"bad vocabulary header: pruneidx_size {prune_size} (expected >= -1)")
    if r.remaining_at_least(10 * size) is False:  # every entry: at least b"\0", int64, int8
        raise r.error(f"bad vocabulary header: {size} words need at least {10 * size} bytes but the file holds "
                      f"{r.bytes_remaining()} more")
    raw_words: List[bytes] = []
    counts: List[int] = []
    for i in range(size):
        what = f"vocabulary (word {i + 1} of {size})"
        raw_words.append(r.word(what))
        count, entry_type = struct.unpack("<qb", r.take(9, what))
        if entry_type != 0:
            raise r.error(f"{what}: entry type {entry_type} (expected 0, a word)")
        counts.append(count)
    if prune_size > 0:
        if r.remaining_at_least(8 * prune_size) is False:
            raise r.error(f"bad vocabulary header: pruneidx_size {prune_size} needs {8 * prune_size} bytes but "
                          f"the file holds {r.bytes_remaining()} more")
        for _ in range(prune_size):
            r.take(8, "pruned index")
    words = [w.decode(encoding, "backslashreplace") for w in raw_words]  # what gensim does with bad bytes
    return words, counts, ntokens


def _read_matrix(r: _Reader, new_format: bool, what: str, rows: int, dim: int) -> np.ndarray:
    if new_format:
        (quant,) = r.unpack("?", what)
        if quant:
            raise r.error(f"the {what} is quantized (a .ftz model); only full-precision models are supported")
    m, n = r.unpack("2q", what)
    if m != rows or n != dim:
        raise r.error(f"bad {what} header: shape ({m}, {n}), expected ({rows}, {dim})")
    if r.remaining_at_least(4 * m * n) is False:
        raise r.error(f"truncated file: the {what} needs {4 * m * n} bytes of float32 but the file holds "
                      f"{r.bytes_remaining()} more")
    return r.floats(m * n, what).reshape(m, n)


def read_facebook_bin(path: PathOrFile, encoding: str = "utf8", full_model: bool = False) -> FastTextFile:
    """Parse a fastText .bin (plain, or .gz/.bz2/.xz). With full_model the output matrix is read too and the
    file must end right after it. Errors are FastTextFormatError (a ValueError)."""
    f, name, owned = _open(path, "rb")
    try:
        r = _Reader(f, name)
        h = _read_header(r)
        new_format = h["version"] is not None
        words, counts, ntokens = _read_vocab(r, new_format, encoding)
        dim, bucket = h["dim"], h["bucket"]
        matrix = _read_matrix(r, new_format, "input matrix", len(words) + bucket, dim)
        output = None
        if full_model:
            rows = len(words)
            output = _read_matrix(r, new_format, "output matrix", rows, dim)
            if not r.at_end():
                raise r.error(f"unexpected bytes after the output matrix (byte offset {r.offset + r.pos})")
        return FastTextFile(
            dim=dim, ws=h["ws"], epoch=h["epoch"], min_count=h["min_count"], neg=h["neg"],
            word_ngrams=h["word_ngrams"], loss=h["loss"], model=h["model"], bucket=bucket, minn=h["minn"],
            maxn=h["maxn"], lr_update_rate=h["lr_update_rate"], t=h["t"], version=h["version"], words=words,
            counts=counts, ntokens=ntokens, input_matrix=matrix, output_matrix=output,
        )
    except FastTextFormatError:
        raise
    except EOFError as e:  # a compressed stream that stops before its end marker
        raise FastTextFormatError(f"{name}: the compressed data ends early (truncated file?): {e}") from None
    except (OSError, zlib.error, lzma.LZMAError) as e:
        if not isinstance(f, (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile)):
            raise
        raise FastTextFormatError(f"{name}: cannot decompress: {e}") from None
    finally:
        if owned:
            f.close()

