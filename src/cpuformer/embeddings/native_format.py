"""cpuformer's own KeyedVectors files: a small JSON file plus one .npy per matrix, which can be memory-mapped.

    <path>                  JSON: {"format": "cpuformer-keyed-vectors", "version": 1, "class": ...,
                                   "vector_size": d, "keys": [...], "counts": [...] or null, "fasttext": {...}}
    <path>.vectors.npy      float32 (len(keys), d), C order
    <path>.vectors_ngrams.npy   FastTextKeyedVectors only: float32 (bucket, d)

np.load never unpickles (allow_pickle=False); with mmap="r" the matrices are mapped read-only, so many
processes share one copy of the pages and loading costs no reading. Every shape and dtype is checked against
the JSON before the object is built.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Type, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .keyed_vectors import KeyedVectors

__all__ = ["save", "load", "FORMAT", "VERSION"]

FORMAT = "cpuformer-keyed-vectors"
VERSION = 1
_MAX_JSON_BYTES = 1 << 31

Path = Union[str, "os.PathLike[str]"]


def _matrix_path(path: str, name: str) -> str:
    return f"{path}.{name}.npy"


def save(path: Path, kv: "KeyedVectors", matrices: Dict[str, np.ndarray], extra: Optional[Dict[str, Any]] = None) -> None:
    path = os.fspath(path)
    meta: Dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "class": type(kv).__name__,
        "vector_size": kv.vector_size,
        "keys": kv.index_to_key,
        "counts": None if kv._counts is None else list(kv._counts),
    }
    meta.update(extra or {})
    for name, matrix in matrices.items():
        np.save(_matrix_path(path, name), np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
    with open(path, "w", encoding="utf8") as f:
        json.dump(meta, f, ensure_ascii=False)


def _load_matrix(path: str, name: str, rows: int, dim: int, mmap: Optional[str]) -> np.ndarray:
    file = _matrix_path(path, name)
    try:
        matrix = np.load(file, mmap_mode=mmap, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: the matrix file {file} is missing") from None
    except ValueError as e:
        raise ValueError(f"{file}: not a valid .npy file ({e})") from None
    if matrix.dtype != np.float32 or matrix.shape != (rows, dim) or not matrix.flags.c_contiguous:
        raise ValueError(
            f"{file}: expected a C-ordered float32 array of shape ({rows}, {dim}), "
            f"got {matrix.dtype} {matrix.shape}"
        )
    return matrix


def read_meta(path: Path) -> Dict[str, Any]:
    path = os.fspath(path)
    size = os.path.getsize(path)
    if size > _MAX_JSON_BYTES:
        raise ValueError(f"{path}: {size} bytes is too large for a keyed-vectors JSON file")
    with open(path, "rb") as f:
        data = f.read()
    try:
        meta = json.loads(data.decode("utf8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: not a cpuformer keyed-vectors file (JSON error: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cpuformer keyed-vectors file (no \"format\": \"{FORMAT}\")")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported version {meta.get('version')!r}; this cpuformer reads version {VERSION}")
    keys, dim, counts = meta.get("keys"), meta.get("vector_size"), meta.get("counts")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{path}: \"keys\" must be a list of strings")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"{path}: \"vector_size\" must be an integer >= 1, got {dim!r}")
    if counts is not None and (
        not isinstance(counts, list) or len(counts) != len(keys)
        or not all(c is None or (isinstance(c, int) and not isinstance(c, bool)) for c in counts)
    ):
        raise ValueError(f"{path}: \"counts\" must be null or a list of {len(keys)} integers (or nulls)")
    return meta


def load(path: Path, mmap: Optional[str], expected: Type["KeyedVectors"]) -> "KeyedVectors":
    if mmap not in (None, "r"):
        raise ValueError(f"mmap must be None or 'r', got {mmap!r}")
    path = os.fspath(path)
    meta = read_meta(path)
    from .fasttext_vectors import FastTextKeyedVectors
    from .keyed_vectors import KeyedVectors

    classes = {"KeyedVectors": KeyedVectors, "FastTextKeyedVectors": FastTextKeyedVectors}
    cls = classes.get(meta.get("class"))  # type: ignore[arg-type]
    if cls is None or not issubclass(cls, expected):
        raise ValueError(f"{path}: holds a {meta.get('class')!r}, which is not a {expected.__name__}")
    keys, dim = meta["keys"], meta["vector_size"]
    key_to_index: Dict[str, int] = {}
    for i, key in enumerate(keys):
        if key_to_index.setdefault(key, i) != i:
            raise ValueError(f"{path}: duplicate key {key!r}")
    vectors = _load_matrix(path, "vectors", len(keys), dim, mmap)
    if cls is FastTextKeyedVectors:
        ngrams_rows = meta.get("bucket")
        if not isinstance(ngrams_rows, int) or ngrams_rows < 0:
            raise ValueError(f"{path}: \"bucket\" must be an integer >= 0")
        ngrams = _load_matrix(path, "vectors_ngrams", ngrams_rows, dim, mmap)
        kv: KeyedVectors = FastTextKeyedVectors._from_parts(
            vectors, ngrams, keys, key_to_index, meta.get("min_n"), meta.get("max_n"), source=path
        )
    else:
        kv = KeyedVectors._from_checked(vectors, keys, key_to_index)
    kv._counts = meta["counts"]
    return kv
