"""Read and write the word2vec C tool's vector files, text and binary.

Text:   b"<count> <dim>\\n", then per vector b"word v1 v2 ... vdim\\n" (values in decimal).
Binary: b"<count> <dim>\\n", then per vector b"word " + dim little-endian float32 (+ an optional b"\\n",
        which the original C tool writes and gensim does not).

Both readers work chunk by chunk, so memory stays at the output matrix plus one chunk. The text reader
splits off the words in Python (one C-level ``partition`` per line) and parses each chunk's numbers in one
``np.loadtxt`` call; if that call fails or returns the wrong shape, the chunk is re-read line by line to
name the exact line and the problem (the slow path is the authority, the fast path only has to be right
when it succeeds). Paths ending in .gz / .bz2 / .xz are (de)compressed, as gensim does through smart_open.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import warnings
import zlib
from typing import Any, BinaryIO, Dict, List, Optional, Tuple, Union

import numpy as np

__all__ = [
    "Word2VecFormatError",
    "Word2VecTruncatedError",
    "DuplicateWordWarning",
    "read_word2vec_format",
    "read_word_counts",
    "write_word2vec_format",
]

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]

_TEXT_CHUNK_BYTES = 1 << 24      # lines handed to one np.loadtxt call
_BINARY_CHUNK_BYTES = 1 << 20    # bytes read per refill of the binary buffer (small: large freed buffers stay resident)
_MAX_READ_BYTES = 1 << 26        # largest single read while filling one binary record
_MAX_WORD_BYTES = 1 << 20        # a binary "word" longer than this means the file is not binary word2vec
_MAX_HEADER_BYTES = 4096
_GROW_BYTES = 1 << 26            # first buffer when the input size is unknown (compressed); doubles as needed
_WRITE_ROWS = 1024               # rows formatted per write; bounds the temporary string array
# np.loadtxt got its C parser in numpy 1.23; before that it is slower than our per-line fallback.
_LOADTXT_IS_FAST = tuple(int(p) for p in np.__version__.split(".")[:2]) >= (1, 23)


# A fastText .bin model starts with this int32 (793712314, little-endian); word2vec files start with digits.
FASTTEXT_MAGIC_BYTES = (793712314).to_bytes(4, "little")


class Word2VecFormatError(ValueError):
    """The file is not a well-formed word2vec file. The message names the file and the line or vector."""


class Word2VecTruncatedError(Word2VecFormatError, EOFError):
    """The file ends before the number of vectors its header announces.

    Also an ``EOFError``, which is what gensim raises in this case, so code written for gensim still works.
    """


class DuplicateWordWarning(UserWarning):
    """A word occurs more than once in a word2vec file; the first occurrence is kept (as gensim does)."""


def _open(path: PathOrFile, mode: str) -> Tuple[BinaryIO, str, bool]:
    """Return (binary file object, display name, whether we own it and must close it)."""
    if hasattr(path, "read" if mode == "rb" else "write"):
        return path, str(getattr(path, "name", "<stream>")), False  # type: ignore[return-value]
    name = os.fspath(path)
    lower = str(name).lower()
    if lower.endswith(".gz"):
        f = gzip.open(name, mode)
    elif lower.endswith(".bz2"):
        f = bz2.open(name, mode)
    elif lower.endswith((".xz", ".lzma")):
        f = lzma.open(name, mode)
    else:
        f = open(name, mode)
    return f, str(name), True  # type: ignore[return-value]


def _read_header(f: BinaryIO, name: str, encoding: str) -> Tuple[int, int, int]:
    """Parse b"<count> <dim>\\n"; return (count, dim, header length in bytes)."""
    raw = f.readline(_MAX_HEADER_BYTES)
    if not raw:
        raise Word2VecFormatError(f"{name}: empty file; expected a header line '<vector count> <dimensions>'")
    if raw.startswith(FASTTEXT_MAGIC_BYTES):
        raise Word2VecFormatError(
            f"{name}: this is a fastText .bin model (Facebook's binary format), not a word2vec file; load it with "
            f"cpuformer.FastTextKeyedVectors.load_facebook_vectors(path)"
        )
    shown = raw.decode(encoding, "replace").rstrip("\r\n")
    if len(shown) > 80:
        shown = shown[:80] + "..."
    parts = raw.decode(encoding, "replace").split()
    try:
        if len(parts) != 2:
            raise ValueError
        count, dim = int(parts[0]), int(parts[1])
    except ValueError:
        hint = ""
        if _looks_binary(raw[:64]) or (not raw.strip() and _looks_binary(f.read(64))):
            hint = ("; the file starts with binary data: if it is a fastText .bin model, load it with "
                    "cpuformer.FastTextKeyedVectors.load_facebook_vectors(path)")
        raise Word2VecFormatError(
            f"{name}: line 1: bad header {shown!r}; expected '<vector count> <dimensions>', two integers{hint}"
        ) from None
    if count < 0 or dim < 1:
        raise Word2VecFormatError(
            f"{name}: line 1: bad header {shown!r}; the vector count must be >= 0 and the dimensions >= 1"
        )
    return count, dim, len(raw)


def _display(word: bytes) -> str:
    return repr(word.decode("utf8", "replace"))


def _decode_words(
    words: List[bytes], encoding: str, unicode_errors: str, name: str, where: str, first: int
) -> List[str]:
    """Decode every word; on failure name the line (text) or vector (binary) that holds the bad bytes."""
    try:
        return [w.decode(encoding, unicode_errors) for w in words]
    except UnicodeDecodeError:
        pass
    for i, w in enumerate(words):
        try:
            w.decode(encoding, unicode_errors)
        except UnicodeDecodeError as e:
            raise Word2VecFormatError(
                f"{name}: {where} {first + i}: word {w!r} is not valid {encoding} ({e.reason}); "
                f"pass unicode_errors='replace' or 'ignore' to load it anyway"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\r\n\x0b\x0c"


def _looks_binary(rest: bytes) -> bool:
    """Numbers are printable ASCII; anything else after the word suggests a binary file read as text."""
    return bool(rest.translate(None, _TEXT_BYTES))


def _parse_text_lines_slowly(
    lines: List[bytes], dim: int, name: str, first_lineno: int, out: np.ndarray
) -> None:
    """Parse lines one by one into out, raising an error that names the first bad line."""
    for i, line in enumerate(lines):
        lineno = first_lineno + i
        word, _, rest = line.rstrip().partition(b" ")
        tokens = rest.split()
        hint = "; if this is a binary word2vec file, pass binary=True" if _looks_binary(rest) else ""
        if len(tokens) != dim:
            raise Word2VecFormatError(
                f"{name}: line {lineno}: expected {dim} values after the word {_display(word)}, "
                f"found {len(tokens)}{hint}"
            )
        try:
            out[i] = [float(tok) for tok in tokens]
        except ValueError:
            for j, tok in enumerate(tokens):
                try:
                    float(tok)
                except ValueError:
                    raise Word2VecFormatError(
                        f"{name}: line {lineno}: value {j + 1} after the word {_display(word)} is "
                        f"{_display(tok)}, not a number{hint}"
                    ) from None
            raise


def _parse_text_chunk(
    lines: List[bytes], dim: int, name: str, first_lineno: int, out: np.ndarray
) -> List[bytes]:
    """Fill out (len(lines), dim) from text lines and return the raw word of each line."""
    words = []
    rests = []
    for line in lines:
        word, sep, rest = line.partition(b" ")
        if not sep:
            word = word.rstrip()
        words.append(word)
        rests.append(rest)
    block = None
    if _LOADTXT_IS_FAST:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data" for an all-blank chunk
                block = np.loadtxt(
                    io.BytesIO(b"".join(rests)), dtype=np.float32, ndmin=2, comments=None, encoding="latin1"
                )
        except ValueError:
            block = None
    if block is not None and block.shape == out.shape:
        out[...] = block
    else:  # a malformed line, or something loadtxt reads differently (blank rest, bare \r): go line by line
        _parse_text_lines_slowly(lines, dim, name, first_lineno, out)
    return words


class _Rows:
    """The (n_want, dim) output, allocated only as far as the file can fill it: a header's count is untrusted.

    With a known number of bytes left (a plain file), at most bytes_left // min_row_bytes rows can follow, so
    that many are allocated (all of them, for a well-formed file). Without it (compressed input, pipes) the
    buffer starts at _GROW_BYTES and doubles as rows arrive.
    """

    def __init__(self, n_want: int, dim: int, bytes_left: Optional[int], min_row_bytes: int, dtype: Any):
        self.n_want, self.dim, self.dtype = n_want, dim, dtype
        if bytes_left is None:
            rows = min(n_want, _GROW_BYTES // (4 * dim))
        else:
            rows = min(n_want, bytes_left // min_row_bytes)
        self.array = np.empty((rows, dim), dtype=dtype)

    def reserve(self, rows: int) -> np.ndarray:
        """Make room for `rows` rows in total; returns the buffer."""
        if rows > self.array.shape[0]:
            grown = np.empty((min(self.n_want, max(rows, 2 * self.array.shape[0])), self.dim), dtype=self.dtype)
            grown[:self.array.shape[0]] = self.array
            self.array = grown
        return self.array

    def result(self, rows: int) -> np.ndarray:
        return self.array if rows == self.array.shape[0] else self.array[:rows].copy()


def _bytes_left(f: BinaryIO) -> Optional[int]:
    """Bytes from the current position to the end for plain seekable files; None when that is unknown
    (decompressing readers, whose size on disk says nothing about their content, and pipes)."""
    if isinstance(f, (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile)):
        return None
    try:
        pos = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
    except (OSError, ValueError, AttributeError):
        return None
    return max(0, end - pos)


def _read_text(
    f: BinaryIO, name: str, count: int, dim: int, n_want: int, encoding: str, unicode_errors: str
) -> Tuple[np.ndarray, List[str]]:
    # a line holds dim values, each at least one character and preceded by a space
    rows = _Rows(n_want, dim, _bytes_left(f), 2 * dim, np.float32)
    words: List[str] = []
    next_lineno = 2
    while len(words) < n_want:
        lines = f.readlines(_TEXT_CHUNK_BYTES)
        if not lines:
            raise Word2VecTruncatedError(
                f"{name}: the header says {count} vectors but the file ends after {len(words)} "
                f"(at line {next_lineno})"
            )
        del lines[n_want - len(words):]
        short = next((j for j, line in enumerate(lines) if len(line) < 2 * dim), None)
        if short is not None:  # too short for dim values: the line parser names the first bad line and raises
            scratch = np.empty((short, dim), dtype=np.float32)  # the lines before it hold >= 2 * dim bytes each
            _parse_text_lines_slowly(lines[:short], dim, name, next_lineno, scratch)
            # the short line has fewer than dim values: the parser raises before writing a row
            _parse_text_lines_slowly(lines[short:short + 1], dim, name, next_lineno + short, scratch[:0])
        start = len(words)
        vectors = rows.reserve(start + len(lines))
        raw = _parse_text_chunk(lines, dim, name, next_lineno, vectors[start:start + len(lines)])
        words.extend(_decode_words(raw, encoding, unicode_errors, name, "line", next_lineno))
        next_lineno += len(lines)
    return rows.result(len(words)), words


def _read_text_no_header(
    f: BinaryIO, name: str, n_want: Optional[int], encoding: str, unicode_errors: str
) -> Tuple[np.ndarray, List[str]]:
    """GloVe-style text: no header line, so the dimension comes from line 1 and the count from the file."""
    first = f.readline()
    if not first.strip():
        raise Word2VecFormatError(f"{name}: line 1: expected '<word> <v1> ... <vN>' (no_header=True), found nothing")
    dim = len(first.split()) - 1
    if dim < 1:
        raise Word2VecFormatError(
            f"{name}: line 1: expected '<word> <v1> ... <vN>' (no_header=True), found only {_display(first.strip())}"
        )
    blocks: List[np.ndarray] = []
    words: List[str] = []
    lines, lineno = [first], 1
    while lines:
        if n_want is not None:
            del lines[n_want - len(words):]
        block = np.empty((len(lines), dim), dtype=np.float32)
        raw = _parse_text_chunk(lines, dim, name, lineno, block)
        words.extend(_decode_words(raw, encoding, unicode_errors, name, "line", lineno))
        blocks.append(block)
        lineno += len(lines)
        if n_want is not None and len(words) >= n_want:
            break
        lines = f.readlines(_TEXT_CHUNK_BYTES)
    return np.concatenate(blocks), words


def _read_binary(
    f: BinaryIO, name: str, count: int, dim: int, n_want: int, header_len: int,
    encoding: str, unicode_errors: str,
) -> Tuple[np.ndarray, List[str]]:
    row_bytes = 4 * dim
    left = _bytes_left(f)
    rows = _Rows(n_want, dim, left, row_bytes + 1, np.dtype("<f4"))  # b" " + the floats at least
    max_read = _MAX_READ_BYTES if left is None else max(1, min(_MAX_READ_BYTES, left))
    out = memoryview(rows.array.reshape(-1).view(np.uint8))
    raw_words: List[bytes] = []
    buf = b""
    mv = memoryview(buf)
    pos = 0               # next record starts at buf[pos]
    buf_offset = header_len  # file offset of buf[0], for error messages
    eof = False
    i = 0
    while i < n_want:
        sp = buf.find(b" ", pos)
        if sp < 0 or sp + 1 + row_bytes > len(buf):
            if eof:
                where = f"byte offset {buf_offset + pos}"
                raise Word2VecTruncatedError(
                    f"{name}: truncated binary file: the header says {count} vectors of {dim} float32 values "
                    f"({row_bytes} bytes each, after the word and a space) but the file ends after {i} "
                    f"complete vectors ({where}, {len(buf) - pos} bytes left)"
                )
            if sp < 0 and len(buf) - pos > _MAX_WORD_BYTES:
                raise Word2VecFormatError(
                    f"{name}: vector {i + 1} (byte offset {buf_offset + pos}): no space-terminated word within "
                    f"{_MAX_WORD_BYTES} bytes; is this a binary word2vec file?"
                )
            # enough for the record being parsed, but never one huge read for an absurd header dimension
            more = f.read(max(_BINARY_CHUNK_BYTES, min(row_bytes + 1, max_read)))
            if not more:
                eof = True
                continue
            buf_offset += pos
            buf = buf[pos:] + more
            mv = memoryview(buf)
            pos = 0
            continue
        word = buf[pos:sp].lstrip(b"\n")  # the C tool writes b"\n" after each vector; gensim strips it too
        if b"\n" in word:
            raise Word2VecFormatError(
                f"{name}: vector {i + 1} (byte offset {buf_offset + pos}): word {_display(word)} contains a "
                f"newline; is this a text word2vec file? (pass binary=False)"
            )
        raw_words.append(word)
        if i >= rows.array.shape[0]:
            out = memoryview(rows.reserve(i + 1).reshape(-1).view(np.uint8))
        vec_start = sp + 1
        out[i * row_bytes:(i + 1) * row_bytes] = mv[vec_start:vec_start + row_bytes]
        pos = vec_start + row_bytes
        i += 1
    words = _decode_words(raw_words, encoding, unicode_errors, name, "vector", 1)
    return rows.result(i).astype(np.float32, copy=False), words


def _drop_duplicates(
    vectors: np.ndarray, words: List[str], name: str, where: str, first: int
) -> Tuple[np.ndarray, List[str], Dict[str, int]]:
    """Keep the first occurrence of each word, as gensim does, and warn once naming the first duplicate."""
    key_to_index = dict(zip(words, range(len(words))))
    if len(key_to_index) == len(words):
        return vectors, words, key_to_index
    key_to_index = {}
    keep: List[int] = []
    duplicates: List[int] = []
    for i, w in enumerate(words):
        if w in key_to_index:
            duplicates.append(i)
        else:
            key_to_index[w] = len(keep)
            keep.append(i)
    d = duplicates[0]
    warnings.warn(
        f"{name}: {len(duplicates)} duplicate word(s) ignored, keeping each word's first vector as gensim does; "
        f"the first duplicate is {words[d]!r} at {where} {first + d} "
        f"(first seen at {where} {first + key_to_index[words[d]]})",
        DuplicateWordWarning,
        stacklevel=4,
    )
    return np.ascontiguousarray(vectors[keep]), [words[i] for i in keep], key_to_index


def read_word2vec_format(
    path: PathOrFile,
    binary: bool = False,
    limit: Optional[int] = None,
    encoding: str = "utf8",
    unicode_errors: str = "strict",
    no_header: bool = False,
    return_count: bool = False,
) -> Any:
    """Read a word2vec text or binary file; return (vectors float32 (n, dim), index_to_key, key_to_index).

    ``no_header=True`` reads a text file without the '<count> <dims>' line (GloVe's format), as gensim does.

    ``limit`` reads at most that many vectors; like gensim, ``None`` and ``0`` both mean "all". Duplicate
    words keep their first vector and raise a ``DuplicateWordWarning`` (gensim logs a warning), so the result
    can hold fewer vectors than were read. Lines after the announced count are ignored, as in gensim.
    Errors are ``Word2VecFormatError`` (a ``ValueError``); a file shorter than its header raises
    ``Word2VecTruncatedError``, which is also an ``EOFError`` like gensim's; so does compressed input that
    ends early, and compressed data that cannot be decompressed raises ``Word2VecFormatError``.
    With ``return_count=True`` a fourth item is returned: the number of vectors read before duplicates were
    dropped (the header's count, or the limit), which gensim uses to make up descending counts.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, got {limit}")
    if no_header and binary:
        raise ValueError("no_header=True is for text files (GloVe); binary word2vec files always have a header")
    f, name, owned = _open(path, "rb")
    try:
        if no_header:
            vectors, words = _read_text_no_header(f, name, limit or None, encoding, unicode_errors)
            result = _drop_duplicates(vectors, words, name, "line", 1)
        else:
            count, dim, header_len = _read_header(f, name, encoding)
            n_want = min(count, limit) if limit else count
            if binary:
                vectors, words = _read_binary(f, name, count, dim, n_want, header_len, encoding, unicode_errors)
                result = _drop_duplicates(vectors, words, name, "vector", 1)
            else:
                vectors, words = _read_text(f, name, count, dim, n_want, encoding, unicode_errors)
                result = _drop_duplicates(vectors, words, name, "line", 2)
        return result + (len(words),) if return_count else result
    except Word2VecFormatError:
        raise
    except EOFError as e:  # gzip / bz2 / lzma: the compressed stream stops before its end marker
        raise Word2VecTruncatedError(f"{name}: the compressed data ends early (truncated file?): {e}") from None
    except (OSError, zlib.error, lzma.LZMAError) as e:
        if not owned or not isinstance(f, (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile)):
            raise
        raise Word2VecFormatError(f"{name}: cannot decompress: {e}") from None
    finally:
        if owned:
            f.close()


def read_word_counts(path: PathOrFile, unicode_errors: str = "strict") -> Dict[str, int]:
    """gensim's fvocab file: one "word count" per line (utf8); a later line for the same word wins."""
    f, name, owned = _open(path, "rb")
    counts: Dict[str, int] = {}
    try:
        for lineno, line in enumerate(f, 1):
            parts = line.decode("utf8", unicode_errors).strip().split()
            try:
                if len(parts) != 2:
                    raise ValueError
                counts[parts[0]] = int(parts[1])
            except ValueError:
                raise Word2VecFormatError(
                    f"{name}: line {lineno}: expected '<word> <count>', found {_display(line.strip()[:80])}"
                ) from None
    except UnicodeDecodeError as e:
        raise Word2VecFormatError(f"{name}: not valid utf8 ({e.reason}); pass unicode_errors='replace'") from None
    finally:
        if owned:
            f.close()
    return counts


def write_word2vec_format(
    path: PathOrFile, vectors: np.ndarray, index_to_key: List[str], binary: bool = False
) -> None:
    """Write vectors in word2vec format, byte-for-byte what gensim 4's ``save_word2vec_format`` writes.

    Text values use the shortest decimal that reads back to the same float32 (numpy's repr, which is what
    gensim's ``str(value)`` gives), so text round trips are exact. Binary is little-endian float32 without
    the C tool's trailing newline. Words that contain a space or a newline cannot be stored and raise
    ``ValueError`` before anything is written.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(index_to_key):
        raise ValueError(
            f"vectors must have shape ({len(index_to_key)}, dim) to match index_to_key, got {vectors.shape}"
        )
    for w in index_to_key:
        if " " in w or "\n" in w:
            raise ValueError(f"cannot write the word {w!r}: word2vec files cannot hold words with spaces or newlines")
    n, dim = vectors.shape
    f, _name, owned = _open(path, "wb")
    try:
        f.write(f"{n} {dim}\n".encode("utf8"))
        row_bytes = 4 * dim
        for a in range(0, n, _WRITE_ROWS):
            rows = vectors[a:a + _WRITE_ROWS]
            words = index_to_key[a:a + _WRITE_ROWS]
            if binary:
                data = memoryview(np.ascontiguousarray(rows, dtype=np.dtype("<f4")).tobytes())
                f.write(b"".join(
                    w.encode("utf8") + b" " + data[k * row_bytes:(k + 1) * row_bytes]
                    for k, w in enumerate(words)
                ))
            else:
                text = rows.astype(np.float32, copy=False).astype(str).tolist()
                f.write("".join(f"{w} {' '.join(r)}\n" for w, r in zip(words, text)).encode("utf8"))
    finally:
        if owned:
            f.close()
